/**
 * Splits the atoms of one run and shape into groups whose boxes do not
 * overlap. Why: the kernel's concatenated interval set (`nft_set_pipapo`)
 * refuses overlapping elements ("File exists"), while a run only needs their
 * union. Exact duplicates are dropped; an atom that overlaps one already in
 * a group goes to the next group (one more lookup, same result, because all
 * atoms of a run share one action). Single-field sets (`a`) need no split:
 * nft merges overlapping intervals of an anonymous set itself. Pure.
 */
import { parseIPv4, parseIPv6 } from "../../shared/net/ip.js";
import type { Atom } from "./atoms.js";

interface Placed {
  readonly atom: Atom;
}

class Group {
  readonly atoms: Atom[] = [];
  /** network key → atoms with exactly that network */
  private readonly byNet = new Map<string, Placed[]>();
  /** network key → atoms with a strictly longer prefix inside it */
  private readonly below = new Map<string, Placed[]>();

  constructor(private readonly masks: readonly bigint[]) {}

  overlaps(atom: Atom, value: bigint, prefix: number): boolean {
    for (let q = 0; q <= prefix; q++) {
      for (const other of this.byNet.get(netKey(value & this.mask(q), q)) ?? []) {
        if (restOverlaps(atom, other.atom)) return true;
      }
    }
    for (const other of this.below.get(netKey(value, prefix)) ?? []) {
      if (restOverlaps(atom, other.atom)) return true;
    }
    return false;
  }

  add(atom: Atom, value: bigint, prefix: number): void {
    const placed = { atom };
    this.atoms.push(atom);
    push(this.byNet, netKey(value, prefix), placed);
    for (let q = 0; q < prefix; q++) push(this.below, netKey(value & this.mask(q), q), placed);
  }

  private mask(prefix: number): bigint {
    return this.masks[prefix] ?? 0n;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function netKey(value: bigint, prefix: number): string {
  return `${value.toString(16)}/${prefix}`;
}

/** Whether two atoms with overlapping networks also overlap in protocol, port and ICMP type. */
function restOverlaps(a: Atom, b: Atom): boolean {
  if (a.proto !== b.proto) return false;
  if (a.ports !== undefined && b.ports !== undefined)
    return a.ports.from <= b.ports.to && b.ports.from <= a.ports.to;
  if (a.icmpType !== undefined && b.icmpType !== undefined) return a.icmpType === b.icmpType;
  return true;
}

function atomKey(atom: Atom): string {
  return `${atom.net}|${atom.proto ?? ""}|${atom.ports?.from ?? ""}-${atom.ports?.to ?? ""}|${atom.icmpType ?? ""}`;
}

const MASKS: Record<4 | 6, bigint[]> = { 4: masks(32), 6: masks(128) };

function masks(bits: number): bigint[] {
  const all = (1n << BigInt(bits)) - 1n;
  return Array.from({ length: bits + 1 }, (_, q) => (all << BigInt(bits - q)) & all);
}

/** Overlap-free groups of atoms (all of one shape), in first-seen order, duplicates removed. */
export function groupAtoms(atoms: readonly Atom[], family: 4 | 6, split: boolean): Atom[][] {
  const seen = new Set<string>();
  const groups: Group[] = [];
  for (const atom of atoms) {
    const key = atomKey(atom);
    if (seen.has(key)) continue;
    seen.add(key);
    const [address = "", prefixText = ""] = atom.net.split("/");
    const value = family === 4 ? BigInt(parseIPv4(address)) : parseIPv6(address);
    const prefix = Number(prefixText);
    let group = split ? groups.find((g) => !g.overlaps(atom, value, prefix)) : groups[0];
    if (group === undefined) {
      group = new Group(MASKS[family]);
      groups.push(group);
    }
    group.add(atom, value, prefix);
  }
  return groups.map((g) => g.atoms);
}

/**
 * Splits the atoms of one run and shape into groups whose boxes do not
 * overlap. Why: the kernel's concatenated interval set (`nft_set_pipapo`)
 * refuses overlapping elements ("File exists"), while a run only needs their
 * union. Exact duplicates are dropped; an atom that overlaps one already in
 * a group goes to the next group (one more lookup, same result, because all
 * atoms of a run share one action). Single-field sets (`a`) need no split:
 * nft merges overlapping intervals of an anonymous set itself. Pure.
 *
 * Networks are compared as bit strings: two prefixes overlap exactly when
 * one is a prefix of the other. Only the prefix lengths present in a group
 * are probed, so the cost per atom stays small (rule sets use few lengths).
 */
import { parseIPv4, parseIPv6 } from "../../shared/net/ip.js";
import type { Atom } from "./atoms.js";

interface Placed {
  readonly atom: Atom;
  readonly bits: string;
}

class Group {
  readonly atoms: Atom[] = [];
  /** prefix length → network bits → atoms with exactly that network */
  readonly #byLength = new Map<number, Map<string, Placed[]>>();

  overlaps(atom: Atom, bits: string): boolean {
    for (const [length, nets] of this.#byLength) {
      // an atom of the group contains this one, or is contained in it
      const key = length <= bits.length ? bits.slice(0, length) : undefined;
      const candidates = key === undefined ? undefined : nets.get(key);
      for (const other of candidates ?? []) if (restOverlaps(atom, other.atom)) return true;
      if (length > bits.length) {
        for (const [net, others] of nets) {
          if (!net.startsWith(bits)) continue;
          for (const other of others) if (restOverlaps(atom, other.atom)) return true;
        }
      }
    }
    return false;
  }

  add(atom: Atom, bits: string): void {
    const placed = { atom, bits };
    this.atoms.push(atom);
    let nets = this.#byLength.get(bits.length);
    if (nets === undefined) {
      nets = new Map();
      this.#byLength.set(bits.length, nets);
    }
    const list = nets.get(bits);
    if (list === undefined) nets.set(bits, [placed]);
    else list.push(placed);
  }
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

/** The network part of `addr/len` as a string of `len` bits. */
function networkBits(net: string, family: 4 | 6): string {
  const [address = "", prefixText = ""] = net.split("/");
  const prefix = Number(prefixText);
  const full =
    family === 4
      ? parseIPv4(address).toString(2).padStart(32, "0")
      : parseIPv6(address).toString(2).padStart(128, "0");
  return full.slice(0, prefix);
}

/** Overlap-free groups of atoms (all of one shape), in first-seen order, duplicates removed. */
export function groupAtoms(atoms: readonly Atom[], family: 4 | 6, split: boolean): Atom[][] {
  const seen = new Set<string>();
  const groups: Group[] = [];
  for (const atom of atoms) {
    const key = atomKey(atom);
    if (seen.has(key)) continue;
    seen.add(key);
    const bits = split ? networkBits(atom.net, family) : "";
    let group = split ? groups.find((g) => !g.overlaps(atom, bits)) : groups[0];
    if (group === undefined) {
      group = new Group();
      groups.push(group);
    }
    group.add(atom, bits);
  }
  return groups.map((g) => g.atoms);
}

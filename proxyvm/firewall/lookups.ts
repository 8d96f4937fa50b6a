/**
 * The rule lines of a VM's chains: runs of same-action rules → lookups
 * (one per shape and overlap-free group) → nft statements, for the original
 * direction (`vm-` chain: the packet's destination) or the reply direction
 * (`rpl-` chain: the reply's source, i.e. the flow's original destination).
 * Pure.
 */
import { createHash } from "node:crypto";
import { type Atom, type planRuns, SHAPES, type Shape } from "./atoms.js";
import type { Family, FamilySyntax } from "./family.js";
import { groupAtoms } from "./groups.js";

export type Direction = "original" | "reply";

function keyExpression(shape: Shape, syntax: FamilySyntax, direction: Direction): string {
  const addr = direction === "original" ? syntax.daddr : syntax.saddr;
  const port = direction === "original" ? "th dport" : "th sport";
  switch (shape) {
    case "a":
      return addr;
    case "ap":
      return `${addr} . meta l4proto`;
    case "app":
      return `${addr} . meta l4proto . ${port}`;
    case "at":
      return `${addr} . ${syntax.icmpType}`;
    case "dns":
      return `${syntax.ctOrigDaddr} . meta l4proto . ${port}`;
  }
}

/** The set type of a shape's key (the same in both directions: only the key expression differs). */
function keyType(shape: Shape, syntax: FamilySyntax): string {
  const icmp = syntax.icmpProto === "icmp" ? "icmp_type" : "icmpv6_type";
  switch (shape) {
    case "a":
      return syntax.addrType;
    case "ap":
      return `${syntax.addrType} . inet_proto`;
    case "app":
    case "dns":
      return `${syntax.addrType} . inet_proto . inet_service`;
    case "at":
      return `${syntax.addrType} . ${icmp}`;
  }
}

/**
 * Named sets of a compiled table, by name → declaration. Why named and not
 * anonymous (`{ ... }` in the rule): the kernel binds every anonymous set by
 * walking the whole transaction so far, which makes a full reload quadratic
 * in its size (most of its kernel time at 200 VMs × 50 rules); a named set is
 * bound without that walk. The name is a hash of the content, so equal sets
 * (the DNS servers of every VM, the same networks in both directions) are
 * one kernel object, and a set never changes under a name.
 */
export type NamedSets = Map<string, string>;

/** 64 bits of the declaration's hash: two different sets of one table never share a name in practice. */
function setName(body: string): string {
  return `s-${createHash("sha256").update(body).digest("hex").slice(0, 16)}`;
}

function namedSet(shape: Shape, syntax: FamilySyntax, elements: readonly string[], sets: NamedSets): string {
  const interval = elements.some((e) => e.includes("/") || e.includes("-"));
  // networks of one address-only lookup may overlap (same action: their union is what counts)
  const flags = !interval ? "" : shape === "a" ? " flags interval; auto-merge;" : " flags interval;";
  const body = `type ${keyType(shape, syntax)};${flags} elements = { ${elements.join(", ")} }`;
  const name = setName(body);
  sets.set(name, `\tset ${name} { ${body} }`);
  return `@${name}`;
}

function formatNet(net: string): string {
  // a host needs no prefix; "/32" is only a host length for IPv4 (2001:db8::/32 is a network)
  if (net.endsWith("/32") && !net.includes(":")) return net.slice(0, -3);
  if (net.endsWith("/128")) return net.slice(0, -4);
  return net;
}

/** One set element; `undefined` when the atom cannot match in this direction (an untracked ICMP type). */
function element(atom: Atom, syntax: FamilySyntax, direction: Direction): string | undefined {
  const parts = [formatNet(atom.net)];
  if (atom.shape === "at") {
    const type = direction === "original" ? atom.icmpType : syntax.icmpReplies.get(atom.icmpType ?? -1);
    if (type === undefined) return undefined;
    parts.push(String(type));
  } else if (atom.proto !== undefined) {
    parts.push(atom.proto === "icmp" ? syntax.icmpProto : atom.proto);
    if (atom.ports !== undefined) {
      const { from, to } = atom.ports;
      parts.push(from === to ? String(from) : `${from}-${to}`);
    }
  }
  return parts.join(" . ");
}

/** The match of one atom without a set (an "any" destination needs no address match). */
function singleMatch(atom: Atom, syntax: FamilySyntax, direction: Direction): string {
  const parts: string[] = [];
  const original = direction === "original";
  if (atom.shape === "dns") parts.push(`${syntax.ctOrigDaddr} ${formatNet(atom.net)}`);
  else if (atom.net !== syntax.anyNet)
    parts.push(`${original ? syntax.daddr : syntax.saddr} ${formatNet(atom.net)}`);
  if (atom.shape === "at") {
    const type = original ? atom.icmpType : syntax.icmpReplies.get(atom.icmpType ?? -1);
    parts.push(`${syntax.icmpType} ${type}`);
  } else if (atom.proto !== undefined) {
    parts.push(`meta l4proto ${atom.proto === "icmp" ? syntax.icmpProto : atom.proto}`);
    if (atom.ports !== undefined) {
      const { from, to } = atom.ports;
      parts.push(`${original ? "th dport" : "th sport"} ${from === to ? from : `${from}-${to}`}`);
    }
  }
  return parts.join(" ");
}

interface Lookup {
  readonly action: "accept" | "drop";
  readonly shape: Shape;
  readonly atoms: readonly Atom[];
}

/** Runs → per run, its lookups: one per shape and overlap-free group. Shared by both directions. */
export function planLookups(runs: ReturnType<typeof planRuns>, family: Family): Lookup[][] {
  return runs.map((run) => {
    const lookups: Lookup[] = [];
    const byShape = new Map<Shape, Atom[]>();
    for (const atom of run.atoms) {
      const list = byShape.get(atom.shape);
      if (list === undefined) byShape.set(atom.shape, [atom]);
      else list.push(atom);
    }
    for (const shape of SHAPES) {
      for (const group of groupAtoms(byShape.get(shape) ?? [], family, shape !== "a")) {
        lookups.push({ action: run.action, shape, atoms: group });
      }
    }
    return lookups;
  });
}

/**
 * A run of several lookups whose atoms all name a destination is entered only
 * when the packet's address is in their union (one interval lookup in a
 * named set; nft merges overlapping networks): a packet the run cannot match, however long
 * the run, costs one lookup instead of one per shape. The run's lookups sit
 * in an anonymous chain bound to that rule (`jump { ... }`), which goes away
 * with the rule, so nothing needs a name or a cleanup.
 */
function prefilter(
  lookups: readonly Lookup[],
  syntax: FamilySyntax,
  direction: Direction,
  sets: NamedSets,
): string | undefined {
  if (lookups.length < 2) return undefined;
  const nets = new Set<string>();
  for (const lookup of lookups) {
    if (lookup.shape === "dns") return undefined;
    for (const atom of lookup.atoms) {
      if (atom.net === syntax.anyNet) return undefined;
      nets.add(formatNet(atom.net));
    }
  }
  // overlapping networks are fine: auto-merge keeps their union
  const body = `type ${syntax.addrType}; flags interval; auto-merge; elements = { ${[...nets].join(", ")} }`;
  const name = setName(body);
  sets.set(name, `\tset ${name} { ${body} }`);
  return `${direction === "original" ? syntax.daddr : syntax.saddr} @${name} jump {`;
}

export function renderRuns(
  runs: readonly (readonly Lookup[])[],
  syntax: FamilySyntax,
  direction: Direction,
  verdicts: { accept: string; drop: string },
  sets: NamedSets,
): string[] {
  return runs.flatMap((lookups) => {
    const lines = renderLookups(lookups, syntax, direction, verdicts, sets);
    const entry = lines.length < 2 ? undefined : prefilter(lookups, syntax, direction, sets);
    return entry === undefined ? lines : [entry, ...lines.map((line) => `\t${line}`), "}"];
  });
}

function renderLookups(
  lookups: readonly Lookup[],
  syntax: FamilySyntax,
  direction: Direction,
  verdicts: { accept: string; drop: string },
  sets: NamedSets,
): string[] {
  const lines: string[] = [];
  for (const lookup of lookups) {
    const elements: string[] = [];
    let only: Atom | undefined;
    for (const atom of lookup.atoms) {
      const text = element(atom, syntax, direction);
      if (text === undefined) continue;
      elements.push(text);
      only = atom;
    }
    if (only === undefined) continue;
    // one element: plain matches cost the packet the same as a lookup, but creating an
    // anonymous set per rule makes a big reload many times slower in the kernel
    const match =
      elements.length === 1
        ? singleMatch(only, syntax, direction)
        : `${keyExpression(lookup.shape, syntax, direction)} ${namedSet(lookup.shape, syntax, elements, sets)}`;
    lines.push(`${match}${match === "" ? "" : " "}${verdicts[lookup.action]}`);
  }
  return lines;
}

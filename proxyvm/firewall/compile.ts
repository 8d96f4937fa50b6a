/**
 * The firewall compiler: validated rule sets (and DNS names resolved
 * elsewhere) → nft scripts. Pure and deterministic: the same input always
 * gives the same text. See docs/firewall-agent.md for the ruleset's shape.
 *
 * Per native address S the table holds three chains:
 * - `vm-S`: judges a packet from the VM by its own header fields (new flows,
 *   and established flows whose stamp is stale); first match wins;
 * - `rpl-S`: judges a reply-direction packet of a stale flow by the flow's
 *   original destination (the reply's source), so a flow the new rules forbid
 *   is cut in both directions;
 * - `est-S`: the fast path of established/related traffic: a flow stamped
 *   (ct mark) with the current generation of S passes with one compare.
 */
import type { FirewallRule } from "../../shared/firewall/index.js";
import { type Atom, findUnresolvedDrop, planRuns, SHAPES, type Shape } from "./atoms.js";
import { chainSuffix, FAMILIES, type Family, type FamilySyntax } from "./family.js";
import { hashGeneration } from "./generation.js";
import { groupAtoms } from "./groups.js";

/** Interfaces VMs are connected through (Xen's vifDOMID.IDX; the NAT namespace's veth keeps the name). */
export const DEFAULT_CLIENT_INTERFACES = "vif*";

export interface VmRules {
  readonly address: string;
  readonly rules: readonly FirewallRule[];
  /** `dsthost` → resolved `addr/len` of this family; a name missing here did not resolve */
  readonly resolved: ReadonlyMap<string, readonly string[]>;
}

export interface VmBlocked {
  readonly address: string;
  /** why the VM is blocked (fail closed) */
  readonly blocked: string;
}

export type VmInput = VmRules | VmBlocked;

export interface CompiledVm {
  readonly address: string;
  /** the `ct mark` stamp of flows the current rules accepted; `undefined` when blocked */
  readonly generation: number | undefined;
  /** set when the VM is blocked: the reason (given, or a `drop` rule whose name did not resolve) */
  readonly blocked: string | undefined;
  /** the VM's chain blocks, to be placed inside `table ... { }` */
  readonly chains: string;
}

export interface CompileOptions {
  /** `iifname` pattern of client interfaces: traffic from a VM without rules is rejected */
  readonly clientInterfaces?: string;
}

export function chainNames(address: string): { vm: string; est: string; rpl: string } {
  const s = chainSuffix(address);
  return { vm: `vm-${s}`, est: `est-${s}`, rpl: `rpl-${s}` };
}

type Direction = "original" | "reply";

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
function planLookups(runs: ReturnType<typeof planRuns>, family: Family): Lookup[][] {
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
 * when the packet's address is in their union (one interval lookup; nft
 * merges overlapping networks): a packet the run cannot match, however long
 * the run, costs one lookup instead of one per shape. The run's lookups sit
 * in an anonymous chain bound to that rule (`jump { ... }`), which goes away
 * with the rule, so nothing needs a name or a cleanup.
 */
function prefilter(
  lookups: readonly Lookup[],
  syntax: FamilySyntax,
  direction: Direction,
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
  return `${direction === "original" ? syntax.daddr : syntax.saddr} { ${[...nets].join(", ")} } jump {`;
}

function renderRuns(
  runs: readonly (readonly Lookup[])[],
  syntax: FamilySyntax,
  direction: Direction,
  verdicts: { accept: string; drop: string },
): string[] {
  return runs.flatMap((lookups) => {
    const lines = renderLookups(lookups, syntax, direction, verdicts);
    const entry = lines.length < 2 ? undefined : prefilter(lookups, syntax, direction);
    return entry === undefined ? lines : [entry, ...lines.map((line) => `\t${line}`), "}"];
  });
}

function renderLookups(
  lookups: readonly Lookup[],
  syntax: FamilySyntax,
  direction: Direction,
  verdicts: { accept: string; drop: string },
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
        : `${keyExpression(lookup.shape, syntax, direction)} { ${elements.join(", ")} }`;
    lines.push(`${match}${match === "" ? "" : " "}${verdicts[lookup.action]}`);
  }
  return lines;
}

const GENERATION_PLACEHOLDER = "@GENERATION@";

function chainBlock(name: string, lines: readonly string[]): string {
  return [`\tchain ${name} {`, ...lines.map((l) => `\t\t${l}`), "\t}"].join("\n");
}

/** Compiles one VM's three chains. A `drop` rule whose name did not resolve blocks the VM. */
export function compileVm(family: Family, input: VmInput): CompiledVm {
  const syntax = FAMILIES[family];
  const names = chainNames(input.address);
  let blocked = "blocked" in input ? input.blocked : undefined;
  if (!("blocked" in input)) {
    const unresolved = findUnresolvedDrop(input.rules, input.resolved);
    if (unresolved !== undefined) {
      blocked = `drop rule ${unresolved.index + 1} names "${unresolved.host}", which did not resolve`;
    }
  }
  const accept = `ct mark set ${GENERATION_PLACEHOLDER} accept`;
  const runs =
    blocked !== undefined || "blocked" in input ? [] : planRuns(input.rules, syntax, input.resolved);
  const lookups = planLookups(runs, family);
  const body = [
    chainBlock(names.vm, [
      ...renderRuns(lookups, syntax, "original", { accept, drop: syntax.reject }),
      syntax.reject,
    ]),
    chainBlock(names.rpl, [...renderRuns(lookups, syntax, "reply", { accept, drop: "drop" }), "drop"]),
  ].join("\n");
  const generation =
    blocked === undefined ? hashGeneration(`${family} ${input.address}\n${body}`) : undefined;
  const est = chainBlock(names.est, [
    ...(generation === undefined ? [] : [`ct mark ${formatGeneration(generation)} accept`]),
    `ct direction original goto ${names.vm}`,
    `goto ${names.rpl}`,
  ]);
  const chains = `${body.replaceAll(GENERATION_PLACEHOLDER, formatGeneration(generation ?? 0))}\n${est}`;
  return { address: input.address, generation, blocked, chains };
}

export function formatGeneration(generation: number): string {
  return `0x${generation.toString(16).padStart(8, "0")}`;
}

function mapBlock(name: string, syntax: FamilySyntax, entries: readonly string[]): string {
  const elements = entries.length === 0 ? "" : ` elements = { ${entries.join(", ")} }`;
  return `\tmap ${name} { type ${syntax.addrType} : verdict;${elements} }`;
}

/**
 * The whole table of one family, replacing whatever was there, in one
 * transaction (`table {}` + `delete table` + `table {...}`: nft's idiom to
 * recreate a table atomically even when it does not exist yet).
 */
export function compileFullScript(
  family: Family,
  vms: readonly VmInput[],
  options: CompileOptions = {},
): { script: string; vms: CompiledVm[] } {
  const syntax = FAMILIES[family];
  const compiled = [...vms].sort(byAddress).map((vm) => compileVm(family, vm));
  const pattern = options.clientInterfaces ?? DEFAULT_CLIENT_INTERFACES;
  const script = [
    `table ${syntax.table} {}`,
    `delete table ${syntax.table}`,
    `table ${syntax.table} {`,
    ...compiled.map((vm) => vm.chains),
    mapBlock(
      "vms",
      syntax,
      compiled.map((vm) => `${vm.address} : goto ${chainNames(vm.address).vm}`),
    ),
    mapBlock(
      "est",
      syntax,
      compiled.map((vm) => `${vm.address} : goto ${chainNames(vm.address).est}`),
    ),
    chainBlock("forward", [
      "type filter hook forward priority filter; policy accept;",
      // 1. flows a known VM started: stamped with its current generation → pass; else re-judge
      `ct state established,related ${syntax.ctOrigSaddr} vmap @est`,
      // 2. replies of flows someone else started (e.g. inbound to a VM) are not this firewall's concern
      "ct state established,related ct direction reply accept",
      // 3. new flows: one lookup by source address, whatever the number of VMs
      `${syntax.saddr} vmap @vms`,
      // 4. fail closed: a client with no (valid) rule set yet sends nothing
      `iifname ${JSON.stringify(pattern)} ${syntax.reject}`,
    ]),
    "}",
    "",
  ].join("\n");
  return { script, vms: compiled };
}

/** Replaces one VM's chains and map entries in one transaction (the table must exist). */
export function compileVmScript(family: Family, vm: VmInput): { script: string; vm: CompiledVm } {
  const syntax = FAMILIES[family];
  const compiled = compileVm(family, vm);
  const names = chainNames(vm.address);
  const t = syntax.table;
  const chains = [names.vm, names.rpl, names.est];
  const script = [
    ...chains.map((c) => `add chain ${t} ${c}`),
    ...chains.map((c) => `flush chain ${t} ${c}`),
    `table ${t} {`,
    compiled.chains,
    "}",
    `add element ${t} vms { ${vm.address} : goto ${names.vm} }`,
    `add element ${t} est { ${vm.address} : goto ${names.est} }`,
    "",
  ].join("\n");
  return { script, vm: compiled };
}

/** Removes one VM's chains and map entries; succeeds whether or not they exist (add, then delete). */
export function compileRemovalScript(family: Family, address: string): string {
  const t = FAMILIES[family].table;
  const names = chainNames(address);
  const chains = [names.vm, names.rpl, names.est];
  return [
    ...chains.map((c) => `add chain ${t} ${c}`),
    `add element ${t} vms { ${address} : goto ${names.vm} }`,
    `add element ${t} est { ${address} : goto ${names.est} }`,
    `delete element ${t} vms { ${address} }`,
    `delete element ${t} est { ${address} }`,
    ...chains.map((c) => `flush chain ${t} ${c}`),
    // est-S jumps to the other two: delete it first
    ...[names.est, names.vm, names.rpl].map((c) => `delete chain ${t} ${c}`),
    "",
  ].join("\n");
}

function byAddress(a: VmInput, b: VmInput): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

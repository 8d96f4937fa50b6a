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
import { findUnresolvedDrop, planRuns } from "./atoms.js";
import { chainSuffix, FAMILIES, type Family, type FamilySyntax } from "./family.js";
import { hashGeneration } from "./generation.js";
import { type NamedSets, planLookups, renderRuns } from "./lookups.js";

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
  /** the named sets its chains look up, by name → declaration (shared by VMs: names are content hashes) */
  readonly sets: ReadonlyMap<string, string>;
}

export interface CompileOptions {
  /** `iifname` pattern of client interfaces: traffic from a VM without rules is rejected */
  readonly clientInterfaces?: string;
}

export function chainNames(address: string): { vm: string; est: string; rpl: string } {
  const s = chainSuffix(address);
  return { vm: `vm-${s}`, est: `est-${s}`, rpl: `rpl-${s}` };
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
  const sets: NamedSets = new Map();
  const body = [
    chainBlock(names.vm, [
      ...renderRuns(lookups, syntax, "original", { accept, drop: syntax.reject }, sets),
      syntax.reject,
    ]),
    chainBlock(names.rpl, [...renderRuns(lookups, syntax, "reply", { accept, drop: "drop" }, sets), "drop"]),
  ].join("\n");
  const generation =
    blocked === undefined ? hashGeneration(`${family} ${input.address}\n${body}`) : undefined;
  const est = chainBlock(names.est, [
    ...(generation === undefined ? [] : [`ct mark ${formatGeneration(generation)} accept`]),
    `ct direction original goto ${names.vm}`,
    `goto ${names.rpl}`,
  ]);
  const chains = `${body.replaceAll(GENERATION_PLACEHOLDER, formatGeneration(generation ?? 0))}\n${est}`;
  return { address: input.address, generation, blocked, chains, sets };
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
  const sets = new Map(compiled.flatMap((vm) => [...vm.sets]));
  const script = [
    `table ${syntax.table} {}`,
    `delete table ${syntax.table}`,
    `table ${syntax.table} {`,
    // sets first: a rule can only look up a set that exists
    ...[...sets.keys()].sort().map((name) => sets.get(name)),
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

/**
 * Replaces one VM's chains and map entries in one transaction (the table must
 * exist). Its named sets are added (a no-op for one that exists: the name is
 * its content); a set no VM uses any more stays until the next full reload.
 */
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
    ...[...compiled.sets.values()],
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

/**
 * Rules → "atoms": each rule becomes zero or more boxes (destination network
 * × protocol × port range | ICMP type) of one *shape*, the set key a single
 * nft lookup can test. Pure.
 */
import type { FirewallAction, FirewallRule, PortRange } from "../../shared/firewall/index.js";
import { parseCidr4, parseCidr6 } from "../../shared/net/ip.js";
import type { FamilySyntax } from "./family.js";

/**
 * - `a`: destination only; `ap`: + protocol; `app`: + destination port;
 * - `at`: + ICMP type; `dns`: the virtual DNS addresses, matched before DNAT.
 */
export type Shape = "a" | "ap" | "app" | "at" | "dns";
export const SHAPES: readonly Shape[] = ["a", "ap", "app", "at", "dns"];

export interface Atom {
  readonly shape: Shape;
  /** canonical `addr/len` */
  readonly net: string;
  readonly proto?: "tcp" | "udp" | "icmp";
  readonly ports?: PortRange;
  readonly icmpType?: number;
}

/** A maximal run of consecutive rules with the same action: order inside it does not matter. */
export interface Run {
  readonly action: FirewallAction;
  readonly atoms: Atom[];
}

/** Thrown for a `drop` rule whose name did not resolve: the VM must be blocked. */
export interface Unresolved {
  readonly host: string;
  readonly index: number;
}

function normalizeNet(family: 4 | 6, text: string): string {
  const cidr =
    family === 4 ? parseCidr4(text, { allowHostBits: true }) : parseCidr6(text, { allowHostBits: true });
  return `${cidr.address}/${cidr.prefix}`;
}

/** The destination networks a rule names; `undefined` = any; `[]` = nothing (unresolved accept). */
function destinations(
  rule: FirewallRule,
  syntax: FamilySyntax,
  resolved: ReadonlyMap<string, readonly string[]>,
): readonly string[] | undefined {
  // the rule model guarantees canonical "addr/len" with host bits cleared (shared/firewall/rule.ts)
  if (rule.dst4 !== undefined) return syntax.family === 4 ? [rule.dst4] : [];
  if (rule.dst6 !== undefined) return syntax.family === 6 ? [rule.dst6] : [];
  if (rule.dsthost !== undefined)
    return (resolved.get(rule.dsthost) ?? []).map((n) => normalizeNet(syntax.family, n));
  return undefined;
}

/** Atoms of one rule. `specialtarget=dns` narrows to TCP/UDP port 53 of the virtual DNS addresses. */
export function ruleAtoms(
  rule: FirewallRule,
  syntax: FamilySyntax,
  resolved: ReadonlyMap<string, readonly string[]>,
): Atom[] {
  if (rule.specialtarget === "dns") {
    const protos =
      rule.proto === undefined ? (["tcp", "udp"] as const) : rule.proto === "icmp" ? [] : [rule.proto];
    const ports = rule.dstports;
    if (ports !== undefined && (ports.from > 53 || ports.to < 53)) return [];
    return syntax.dnsServers.flatMap((server) =>
      protos.map(
        (proto): Atom => ({
          shape: "dns",
          net: `${server}/${syntax.family === 4 ? 32 : 128}`,
          proto,
          ports: { from: 53, to: 53 },
        }),
      ),
    );
  }
  const nets = destinations(rule, syntax, resolved) ?? [syntax.anyNet];
  return nets.map((net): Atom => {
    if (rule.proto === undefined) return { shape: "a", net };
    if (rule.proto === "icmp" && rule.icmptype !== undefined)
      return { shape: "at", net, proto: "icmp", icmpType: rule.icmptype };
    if (rule.proto !== "icmp" && rule.dstports !== undefined)
      return { shape: "app", net, proto: rule.proto, ports: rule.dstports };
    return { shape: "ap", net, proto: rule.proto };
  });
}

/** The first `drop` rule naming a host that did not resolve (fail closed), if any. */
export function findUnresolvedDrop(
  rules: readonly FirewallRule[],
  resolved: ReadonlyMap<string, readonly string[]>,
): Unresolved | undefined {
  const index = rules.findIndex(
    (rule) => rule.action === "drop" && rule.dsthost !== undefined && !resolved.has(rule.dsthost),
  );
  const rule = rules[index];
  return rule?.dsthost === undefined ? undefined : { host: rule.dsthost, index };
}

/** Splits the rules into maximal same-action runs of atoms, in order. */
export function planRuns(
  rules: readonly FirewallRule[],
  syntax: FamilySyntax,
  resolved: ReadonlyMap<string, readonly string[]>,
): Run[] {
  const runs: Run[] = [];
  for (const rule of rules) {
    let last = runs[runs.length - 1];
    if (last === undefined || last.action !== rule.action) {
      last = { action: rule.action, atoms: [] };
      runs.push(last);
    }
    last.atoms.push(...ruleAtoms(rule, syntax, resolved));
  }
  return runs;
}

/**
 * The firewall rule model shared by dom0 (firewall.xml, QubesDB emitter) and
 * the ProxyVM agent (compiler). Values in a `FirewallRule` are always
 * validated and canonical: code that receives one trusts it. Build them with
 * the parsers in `grammar.ts` or check hand-made ones with `validateRule`.
 *
 * Semantics follow shared/spec/firewall.md: rules are ordered, the first
 * match decides, unmatched packets are dropped.
 */

export type FirewallAction = "accept" | "drop";
export type FirewallProto = "tcp" | "udp" | "icmp";

/** An inclusive destination port range; `from === to` for a single port. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export interface FirewallRule {
  readonly action: FirewallAction;
  readonly proto?: FirewallProto;
  /** canonical "A.B.C.D/P" (prefix always explicit, host bits cleared) */
  readonly dst4?: string;
  /** canonical RFC 5952 "addr/P" (prefix always explicit, host bits cleared) */
  readonly dst6?: string;
  /** DNS name, lower case, `a-z 0-9 . _ -` */
  readonly dsthost?: string;
  readonly dstports?: PortRange;
  readonly icmptype?: number;
  /** the VM's virtual DNS servers, TCP and UDP port 53 */
  readonly specialtarget?: "dns";
  /** UNIX seconds; the rule is gone from that moment on */
  readonly expire?: number;
  readonly comment?: string;
}

export const FIREWALL_ACTIONS: readonly FirewallAction[] = ["accept", "drop"];
export const FIREWALL_PROTOS: readonly FirewallProto[] = ["tcp", "udp", "icmp"];

/** The rule a VM without firewall.xml has (spec/firewall.md: "everything allowed"). */
export const ALLOW_ALL_RULES: readonly FirewallRule[] = Object.freeze([Object.freeze({ action: "accept" })]);

/** Option names in the order of the API form (spec example: action first, comment last). */
export const RULE_OPTION_ORDER = [
  "action",
  "dst4",
  "dst6",
  "dsthost",
  "proto",
  "dstports",
  "icmptype",
  "specialtarget",
  "expire",
  "comment",
] as const;

export type RuleOptionName = (typeof RULE_OPTION_ORDER)[number];

/** True when the rule is still in force at `now` (UNIX seconds). A rule expires at `expire` itself. */
export function isRuleActive(rule: FirewallRule, now: number): boolean {
  return rule.expire === undefined || rule.expire > now;
}

/** The destination address family a rule is restricted to, if any. */
export function ruleFamily(rule: FirewallRule): 4 | 6 | undefined {
  if (rule.dst4 !== undefined) return 4;
  if (rule.dst6 !== undefined) return 6;
  return undefined;
}

/**
 * The rule with another protocol (or none), dropping `dstports` / `icmptype`
 * that no longer fit it (spec/firewall.md: changing `proto` clears them).
 */
export function changeRuleProto(rule: FirewallRule, proto: FirewallProto | undefined): FirewallRule {
  const { proto: _old, dstports, icmptype, ...rest } = rule;
  const changed: { -readonly [K in keyof FirewallRule]: FirewallRule[K] } = { ...rest };
  if (proto !== undefined) changed.proto = proto;
  if (dstports !== undefined && (proto === "tcp" || proto === "udp")) changed.dstports = dstports;
  if (icmptype !== undefined && proto === "icmp") changed.icmptype = icmptype;
  return Object.freeze(changed);
}

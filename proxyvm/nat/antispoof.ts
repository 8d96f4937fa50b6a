/**
 * The ProxyVM-wide anti-spoofing table (pure planner). One `inet` table:
 *
 * - prerouting at raw priority (before conntrack, like the reference's
 *   `-t raw` rules): a packet from a `vif*` interface is accepted only when
 *   (interface, source address) is in the allow-list, which holds each VM's
 *   NATIVE address (after a NAT namespace the ProxyVM only sees native ones);
 * - a packet from any other interface claiming a connected VM's address
 *   (`/connected-ips*`, native addresses) is dropped (uplink anti-spoofing);
 * - forward: VMs cannot reach each other through the ProxyVM (Qubes' default:
 *   `vif*` to `vif*` is dropped), and TCP SYNs get their MSS clamped to the
 *   route MTU, which keeps TCP working where the ProxyVM's uplink is smaller.
 *
 * Every script re-declares the table and replaces its rules in the same
 * transaction as its element changes: idempotent, self-healing, atomic. The
 * sets themselves are never flushed by a vif change, so other VMs are never
 * disturbed.
 */
import { ANTISPOOF_TABLE } from "./names.js";

/** Names of the ICMP inner-address rewrite's objects in the anti-spoofing table. */
export const ICMP_INNER_CHAIN = "icmp-inner";
export const ICMP_ERRORS4 = "icmp-errors4";
export const ICMP_ERRORS6 = "icmp-errors6";
export const INNER4 = "inner4";
export const INNER6 = "inner6";

/** Native → visible addresses of every fake-IP VM, for the ICMP inner rewrite. */
export interface InnerMaps {
  readonly v4: readonly (readonly [string, string])[];
  readonly v6: readonly (readonly [string, string])[];
}

/**
 * The ICMP inner-rewrite map changes: replaced whole when what the kernel
 * holds is unknown (`applied` undefined), else only the entries that differ
 * (a changed value is deleted first: nf_tables refuses to overwrite one).
 */
function innerMapLines(t: string, maps: InnerMaps, applied: InnerMaps | undefined): string[] {
  const elements = (pairs: InnerMaps["v4"]) => pairs.map(([n, v]) => `${n} : ${v}`).join(", ");
  if (applied === undefined) {
    const lines = [`flush map ${t} ${INNER4}`, `flush map ${t} ${INNER6}`];
    if (maps.v4.length > 0) lines.push(`add element ${t} ${INNER4} { ${elements(maps.v4)} }`);
    if (maps.v6.length > 0) lines.push(`add element ${t} ${INNER6} { ${elements(maps.v6)} }`);
    return lines;
  }
  const lines: string[] = [];
  for (const [name, want, have] of [
    [INNER4, maps.v4, applied.v4],
    [INNER6, maps.v6, applied.v6],
  ] as const) {
    const wanted = new Map(want);
    const had = new Map(have);
    const stale = [...had].filter(([n, v]) => wanted.get(n) !== v).map(([n]) => n);
    const fresh = [...wanted].filter(([n, v]) => had.get(n) !== v);
    if (stale.length > 0) lines.push(`delete element ${t} ${name} { ${stale.join(", ")} }`);
    if (fresh.length > 0) lines.push(`add element ${t} ${name} { ${elements(fresh)} }`);
  }
  return lines;
}

export interface AllowedPair {
  readonly iif: string;
  readonly address: string;
  readonly family: 4 | 6;
}

function declaration(): string[] {
  const t = `inet ${ANTISPOOF_TABLE}`;
  return [
    `table ${t} {`,
    "\tset allowed4 { type ifname . ipv4_addr; }",
    "\tset allowed6 { type ifname . ipv6_addr; }",
    "\tset ndp6 { type ifname; }",
    "\tset connected4 { type ipv4_addr; }",
    "\tset connected6 { type ipv6_addr; }",
    "\tchain prerouting { type filter hook prerouting priority raw; policy accept; }",
    "\tchain from-vif { }",
    "\tchain forward { type filter hook forward priority filter - 10; policy accept; }",
    // ICMP errors going to fake-IP VMs: the inner source N becomes V (icmp-inner.ts holds the rule)
    `\tset ${ICMP_ERRORS4} { type icmp_type; elements = { destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem }; }`,
    `\tset ${ICMP_ERRORS6} { type icmpv6_type; elements = { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }; }`,
    `\tmap ${INNER4} { type ipv4_addr : ipv4_addr; }`,
    `\tmap ${INNER6} { type ipv6_addr : ipv6_addr; }`,
    `\tchain ${ICMP_INNER_CHAIN} { type filter hook postrouting priority 300; policy accept; }`,
    "}",
    `flush chain ${t} prerouting`,
    `flush chain ${t} from-vif`,
    `flush chain ${t} forward`,
    `add rule ${t} prerouting iifname "vif*" jump from-vif`,
    `add rule ${t} prerouting ip saddr @connected4 drop`,
    `add rule ${t} prerouting ip6 saddr @connected6 drop`,
    `add rule ${t} from-vif iifname . ip saddr @allowed4 accept`,
    `add rule ${t} from-vif iifname . ip6 saddr @allowed6 accept`,
    // a VM with IPv6 resolves its gateway with neighbour discovery from its link-local address
    `add rule ${t} from-vif iifname @ndp6 ip6 saddr { ::, fe80::/10 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept`,
    `add rule ${t} from-vif drop`,
    `add rule ${t} forward iifname "vif*" oifname "vif*" drop`,
    `add rule ${t} forward tcp flags syn tcp option maxseg size set rt mtu`,
  ];
}

function element(pair: AllowedPair): string {
  return `allowed${pair.family} { "${pair.iif}" . ${pair.address} }`;
}

/**
 * Adds and removes allow-list entries of one vif. Removal uses nft's
 * "add, then delete" idiom (nft 1.0.6 has no `destroy`), so removing an absent
 * element is not an error. Removals come first: re-plumbing never widens.
 */
export function planAntispoofChange(
  add: readonly AllowedPair[],
  remove: readonly AllowedPair[],
  ndp: { add?: string[]; remove?: string[] } = {},
  inner?: { readonly maps: InnerMaps; readonly applied: InnerMaps | undefined },
  /**
   * `false`: the table is known to be in place (an earlier transaction of this
   * process declared it), so only elements change. The declaration flushes
   * and re-adds the chains' rules, and the kernel makes a commit that removes
   * anything wait out an RCU grace period: 15-20 ms instead of ~1 ms.
   */
  declare = true,
): string {
  const t = `inet ${ANTISPOOF_TABLE}`;
  const lines = declare ? declaration() : [];
  for (const pair of remove)
    lines.push(`add element ${t} ${element(pair)}`, `delete element ${t} ${element(pair)}`);
  for (const iif of ndp.remove ?? [])
    lines.push(`add element ${t} ndp6 { "${iif}" }`, `delete element ${t} ndp6 { "${iif}" }`);
  for (const pair of add) lines.push(`add element ${t} ${element(pair)}`);
  for (const iif of ndp.add ?? []) lines.push(`add element ${t} ndp6 { "${iif}" }`);
  if (inner !== undefined) lines.push(...innerMapLines(t, inner.maps, inner.applied));
  return `${lines.join("\n")}\n`;
}

/**
 * Replaces the connected-address sets (from `/connected-ips`, `/connected-ips6`)
 * in one transaction, and empties the ICMP inner-rewrite chain for the agent
 * to append its hand-encoded rules right after (icmp-inner.ts); in between,
 * the NAT namespaces drop such errors, so nothing leaks.
 */
export function planConnected(connected4: readonly string[], connected6: readonly string[]): string {
  const t = `inet ${ANTISPOOF_TABLE}`;
  const lines = declaration();
  lines.push(`flush chain ${t} ${ICMP_INNER_CHAIN}`);
  lines.push(`flush set ${t} connected4`, `flush set ${t} connected6`);
  if (connected4.length > 0) lines.push(`add element ${t} connected4 { ${connected4.join(", ")} }`);
  if (connected6.length > 0) lines.push(`add element ${t} connected6 { ${connected6.join(", ")} }`);
  return `${lines.join("\n")}\n`;
}

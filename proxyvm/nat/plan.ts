/**
 * The NAT planner (pure): one vif's desired state → everything the kernel
 * must hold for it. The applier (`apply.ts`) performs it:
 *
 * - `proxyvm`: link/address/route/neighbour/sysctl operations in the agent's
 *   own namespace (the ProxyVM), done over netlink and /proc/sys;
 * - `structure`: `ip -batch` lines that create the NAT namespace, move Xen's
 *   vif into it and create the veth pair (see `planStructure`);
 * - `inside`: `ip -batch` lines run in the NAT namespace (one process: a
 *   netlink socket cannot be opened in another namespace from Node, which has
 *   no setns(2));
 * - `nft`: the stateless NAT table of the namespace, one `nft -f` transaction.
 */

import { parseIPv4, parseIPv6 } from "../../shared/net/ip.js";
import type { FakeVif, PlainVif } from "../desired.js";
import { NAT_TABLE, natNetnsName, OWNED_ALIAS, peerLinkName, XEN_VIF_MAC } from "./names.js";

export type ProxyOp =
  | { readonly op: "sysctl"; readonly path: string; readonly value: string }
  | { readonly op: "link-up"; readonly dev: string }
  | { readonly op: "addr"; readonly dev: string; readonly address: string; readonly prefix: number }
  | {
      readonly op: "route";
      readonly dev: string;
      readonly dst: string;
      readonly prefix: number;
      readonly metric: number;
    }
  | { readonly op: "neigh"; readonly dev: string; readonly address: string; readonly mac: string };

export interface NatPlan {
  readonly vif: string;
  readonly proxyvm: readonly ProxyOp[];
  /** present for fake-IP vifs only */
  readonly namespace?: { readonly name: string; readonly inside: readonly string[]; readonly nft: string };
}

/** ICMP error types that embed the offending packet's header (RFC 792); ICMPv6 likewise (RFC 4443). */
const ICMP_ERRORS = "destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem";
const ICMPV6_ERRORS = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem";

/** The complete plan of one forwarded vif. */
export function planVif(desired: PlainVif | FakeVif): NatPlan {
  const proxyvm = planProxySide(desired);
  if (desired.kind === "plain") return { vif: desired.vif, proxyvm };
  return {
    vif: desired.vif,
    proxyvm,
    namespace: { name: natNetnsName(desired.vif), inside: planInside(desired), nft: planNatNft(desired) },
  };
}

/**
 * The ProxyVM side, identical for both kinds (after the NAT namespace a
 * fake-IP VM looks exactly like a plain one). Ordered: sysctls and addresses
 * before the link is up, the route and neighbour last.
 */
export function planProxySide(d: PlainVif | FakeVif): ProxyOp[] {
  const v6 = d.native.ip6 !== undefined && d.gateway6 !== undefined;
  const ops: ProxyOp[] = [
    { op: "sysctl", path: "net/ipv4/ip_forward", value: "1" },
    { op: "sysctl", path: `net/ipv4/conf/${d.vif}/proxy_arp`, value: "1" },
  ];
  if (v6) {
    ops.push(
      { op: "sysctl", path: "net/ipv6/conf/all/forwarding", value: "1" },
      { op: "sysctl", path: `net/ipv6/conf/${d.vif}/disable_ipv6`, value: "0" },
      { op: "sysctl", path: `net/ipv6/conf/${d.vif}/proxy_ndp`, value: "1" },
    );
  }
  ops.push({ op: "addr", dev: d.vif, address: d.gateway, prefix: 32 });
  // A link-local gateway is already on every IPv6 link (the reference skips it too).
  if (v6 && d.gateway6 !== undefined && !d.gateway6.startsWith("fe80:")) {
    ops.push({ op: "addr", dev: d.vif, address: d.gateway6, prefix: 128 });
  }
  ops.push(
    { op: "link-up", dev: d.vif },
    { op: "route", dev: d.vif, dst: d.native.ip, prefix: 32, metric: d.metric },
    { op: "neigh", dev: d.vif, address: d.native.ip, mac: d.mac },
  );
  if (v6 && d.native.ip6 !== undefined) {
    ops.push(
      { op: "route", dev: d.vif, dst: d.native.ip6, prefix: 128, metric: d.metric },
      { op: "neigh", dev: d.vif, address: d.native.ip6, mac: d.mac },
    );
  }
  return ops;
}

/**
 * Inside the NAT namespace. The kernel there only ever sees ARP and neighbour
 * discovery (everything else is forwarded by the netdev table before the IP
 * stack), so it needs just enough to answer the VM's ARP for its gateway:
 *   1. no IPv6 link-local addresses (addrgenmode none): the namespace itself
 *      must never speak, or it would show up on the VM's link;
 *   2. flush, then add: a live change of the visible address leaves nothing
 *      of the old one behind;
 *   3. the VM's visible address as permanent neighbour and host route, so the
 *      kernel answers its ARP without asking back and passes reverse-path checks;
 *   4. links up last.
 */
export function planInside(d: FakeVif): string[] {
  const vif = d.vif;
  const peer = peerLinkName(vif);
  const lines = [
    `link set dev ${vif} addrgenmode none`,
    `link set dev ${peer} addrgenmode none`,
    `addr flush dev ${vif}`,
    `addr flush dev ${peer}`,
    `route flush dev ${vif}`,
    `neigh flush dev ${vif} nud permanent`,
    `addr add ${d.visible.gateway}/32 dev ${vif}`,
    `addr add ${d.native.ip}/32 dev ${peer}`,
  ];
  const v6 = d.visible.ip6 !== undefined && d.visible.gateway6 !== undefined;
  if (v6) lines.push(`addr add ${d.visible.gateway6}/128 dev ${vif} nodad`);
  lines.push(
    `link set dev ${vif} up`,
    `link set dev ${peer} up`,
    `route replace ${d.visible.ip}/32 dev ${vif}`,
    `neigh replace ${d.visible.ip} lladdr ${d.mac} dev ${vif} nud permanent`,
  );
  if (v6) {
    lines.push(
      `route replace ${d.visible.ip6}/128 dev ${vif}`,
      `neigh replace ${d.visible.ip6} lladdr ${d.mac} dev ${vif} nud permanent`,
    );
  }
  return lines;
}

function hex4(ip: string): string {
  return `0x${parseIPv4(ip).toString(16).padStart(8, "0")}`;
}

function hex6(ip: string): string {
  return `0x${parseIPv6(ip).toString(16).padStart(32, "0")}`;
}

/**
 * The stateless NAT table of one namespace. It replaces itself atomically
 * (declare, delete, define in one transaction), so a live change never has a
 * moment with half a rule set. Nothing is ever routed here: `fwd to` hands a
 * rewritten packet straight to the other interface, with MACs unchanged (the
 * VM's MAC is on `vifX.Y-p` and Xen's vif MAC on the ProxyVM's `vifX.Y`).
 *
 * ICMP errors: an error travelling back to the VM embeds the header of the
 * packet it is about, whose source is the native address. The ProxyVM
 * rewrites that inner address to V before the error gets here
 * (icmp-inner.ts); this table drops any error that still embeds N, so a
 * missing rewrite loses errors and never leaks N (docs/agent.md).
 */
export function planNatNft(d: FakeVif): string {
  const vif = d.vif;
  const peer = peerLinkName(vif);
  const v = d.visible;
  const fromVm = [
    `arp operation request arp saddr ip ${v.ip} arp daddr ip ${v.gateway} accept`,
    ...(v.gateway === d.gateway
      ? []
      : [
          `ip saddr ${v.ip} ip daddr ${v.gateway} ip daddr set ${d.gateway} ip saddr set ${d.native.ip} fwd to "${peer}"`,
        ]),
    `ip saddr ${v.ip} ip saddr set ${d.native.ip} fwd to "${peer}"`,
  ];
  const fromProxy = [
    `ip daddr ${d.native.ip} icmp type { ${ICMP_ERRORS} } @th,160,32 ${hex4(d.native.ip)} drop`,
    ...(v.gateway === d.gateway
      ? []
      : [
          `ip saddr ${d.gateway} ip daddr ${d.native.ip} ip saddr set ${v.gateway} ip daddr set ${v.ip} fwd to "${vif}"`,
        ]),
    `ip daddr ${d.native.ip} ip daddr set ${v.ip} fwd to "${vif}"`,
  ];
  const n6 = d.native.ip6;
  const gw6 = d.gateway6;
  if (v.ip6 !== undefined && v.gateway6 !== undefined && n6 !== undefined && gw6 !== undefined) {
    fromVm.push(
      // neighbour discovery for the visible gateway, answered by the namespace's kernel (like ARP)
      `ip6 saddr { fe80::/10, ${v.ip6} } ip6 hoplimit 255 icmpv6 type nd-neighbor-solicit @th,64,128 ${hex6(v.gateway6)} accept`,
      ...(v.gateway6 === gw6
        ? []
        : [
            `ip6 saddr ${v.ip6} ip6 daddr ${v.gateway6} ip6 daddr set ${gw6} ip6 saddr set ${n6} fwd to "${peer}"`,
          ]),
      `ip6 saddr ${v.ip6} ip6 saddr set ${n6} fwd to "${peer}"`,
    );
    fromProxy.push(
      `ip6 daddr ${n6} icmpv6 type { ${ICMPV6_ERRORS} } @th,128,128 ${hex6(n6)} drop`,
      ...(v.gateway6 === gw6
        ? []
        : [
            `ip6 saddr ${gw6} ip6 daddr ${n6} ip6 saddr set ${v.gateway6} ip6 daddr set ${v.ip6} fwd to "${vif}"`,
          ]),
      `ip6 daddr ${n6} ip6 daddr set ${v.ip6} fwd to "${vif}"`,
    );
  }
  const chain = (name: string, dev: string, rules: string[]) =>
    [
      `\tchain ${name} {`,
      `\t\ttype filter hook ingress device "${dev}" priority 0; policy drop;`,
      ...rules.map((rule) => `\t\t${rule}`),
      "\t}",
    ].join("\n");
  return [
    `table netdev ${NAT_TABLE}`,
    `delete table netdev ${NAT_TABLE}`,
    `table netdev ${NAT_TABLE} {`,
    chain("from-vm", vif, fromVm),
    chain("from-proxyvm", peer, fromProxy),
    "}",
    "",
  ].join("\n");
}

/** What the applier saw in the ProxyVM before structural changes. */
export interface ObservedStructure {
  readonly netnsExists: boolean;
  /** `vifX.Y` in the ProxyVM: Xen's own, the agent's veth end (by `ifalias`), or none */
  readonly proxyLink: "xen" | "ours" | "none";
}

export interface StructurePlan {
  /** `ip -batch` lines in the ProxyVM, run first */
  readonly before: readonly string[];
  /** `ip -batch` lines in the NAT namespace (moving Xen's vif back out) */
  readonly inside: readonly string[];
  /** `ip -batch` lines in the ProxyVM, run last */
  readonly after: readonly string[];
  /** `true` when Xen's vif exists nowhere: the VM is gone and the vif must be cleaned up */
  readonly gone: boolean;
}

const NOTHING: StructurePlan = { before: [], inside: [], after: [], gone: false };

/**
 * Structural steps (namespaces, moves, veth pairs) from the observed shape to
 * the desired kind. Ordered by the kernel's name rules: a name is free in the
 * ProxyVM only after Xen's vif moved out (fake) or the agent's veth end is
 * deleted (back to plain). `agentPid` names the ProxyVM namespace for
 * `ip link set netns PID` from inside the NAT namespace.
 */
export function planStructure(
  d: PlainVif | FakeVif,
  observed: ObservedStructure,
  agentPid: number,
): StructurePlan {
  const vif = d.vif;
  const ns = natNetnsName(vif);
  const { netnsExists, proxyLink } = observed;
  if (d.kind === "fake") {
    const veth = [
      `link add ${peerLinkName(vif)} address ${d.mac} netns ${ns} type veth peer name ${vif} address ${XEN_VIF_MAC}`,
      `link set dev ${vif} alias ${OWNED_ALIAS}`,
    ];
    if (proxyLink === "ours")
      return netnsExists ? NOTHING : { ...NOTHING, before: [`link del dev ${vif}`], gone: true };
    if (proxyLink === "xen") {
      const create = netnsExists ? [] : [`netns add ${ns}`];
      return { ...NOTHING, before: [...create, `link set dev ${vif} netns ${ns}`, ...veth] };
    }
    // Xen's vif already inside (a step was interrupted): only the pair is missing.
    return netnsExists ? { ...NOTHING, before: veth } : { ...NOTHING, gone: true };
  }
  if (!netnsExists) return proxyLink === "xen" ? NOTHING : { ...NOTHING, gone: proxyLink === "none" };
  if (proxyLink === "xen") return { ...NOTHING, after: [`netns del ${ns}`] };
  return {
    before: proxyLink === "ours" ? [`link del dev ${vif}`] : [],
    inside: [`link set dev ${vif} netns ${agentPid}`],
    after: [`netns del ${ns}`],
    gone: false,
  };
}

/** Removal of everything owned for a vif (offline, or its VM is gone). */
export function planTeardown(vif: string, observed: ObservedStructure): string[] {
  // Deleting the namespace destroys everything inside it, Xen's vif included
  // (only done once the VM is offline), and with `vifX.Y-p` our `vifX.Y`, its peer.
  if (observed.netnsExists) return [`netns del ${natNetnsName(vif)}`];
  return observed.proxyLink === "ours" ? [`link del dev ${vif}`] : [];
}

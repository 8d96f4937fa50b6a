/**
 * The NAT planner (pure): one vif's desired state → everything the kernel
 * must hold for it. The applier (`apply.ts`) performs it:
 *
 * - `proxyvm`: link/address/route/neighbour/sysctl operations in the agent's
 *   own namespace (the ProxyVM), done over netlink and /proc/sys;
 * - `structure`: the NAT namespace, the move of Xen's vif into it and the veth
 *   pair (see `planStructure`);
 * - `inside`: link/address/route/neighbour operations in the NAT namespace;
 * - `nft`: the stateless NAT table of the namespace, one transaction.
 *
 * Operations are data; the kernel system performs them in-process (netlink
 * sockets opened inside the namespace, libnftables; see system.ts), the
 * dry-run system prints each as the `ip` command that does the same
 * (`renderStructOp`, `renderInsideOp`).
 */

import { createHash } from "node:crypto";
import { normalizeIPv6, parseIPv4, parseIPv6 } from "../../shared/net/ip.js";
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

/** An operation inside a NAT namespace, on one of its two links. */
export type InsideOp =
  /** no IPv6 link-local address: the namespace itself must never speak on the VM's link */
  | { readonly op: "addrgenmode-none"; readonly dev: string }
  /**
   * Flushes remove what is there but not planned; `keep` lists what is
   * planned (`ADDRESS/PREFIX`, routes `DST/PREFIX`, neighbours `ADDRESS`): a
   * resync of an unchanged namespace then removes nothing.
   */
  | { readonly op: "flush-addrs"; readonly dev: string; readonly keep: readonly string[] }
  | { readonly op: "flush-routes"; readonly dev: string; readonly keep: readonly string[] }
  /** permanent neighbours only (the ones this planner adds) */
  | { readonly op: "flush-neighs"; readonly dev: string; readonly keep: readonly string[] }
  | { readonly op: "addr"; readonly dev: string; readonly address: string; readonly prefix: number }
  | { readonly op: "link-up"; readonly dev: string }
  | { readonly op: "route"; readonly dev: string; readonly dst: string; readonly prefix: number }
  | { readonly op: "neigh"; readonly dev: string; readonly address: string; readonly mac: string }
  /** the namespace's owner mark, on its loopback (see names.ts `ownerMark`) */
  | { readonly op: "alias"; readonly dev: string; readonly alias: string };

/** A structural operation: namespaces and links moving between the ProxyVM and a NAT namespace. */
export type StructOp =
  /** a new namespace, with `sysctls` written inside it before anything enters it */
  | {
      readonly op: "netns-add";
      readonly netns: string;
      readonly sysctls: readonly (readonly [string, string])[];
    }
  | { readonly op: "netns-del"; readonly netns: string }
  /** Xen's vif from the ProxyVM into the NAT namespace */
  | { readonly op: "move-in"; readonly dev: string; readonly netns: string }
  /** Xen's vif from the NAT namespace back to the ProxyVM */
  | { readonly op: "move-out"; readonly dev: string; readonly netns: string }
  /** veth pair: `dev` (MAC `mac`) inside `netns`, its peer `peer` (MAC `peerMac`) in the ProxyVM */
  | {
      readonly op: "veth";
      readonly dev: string;
      readonly mac: string;
      readonly netns: string;
      readonly peer: string;
      readonly peerMac: string;
    }
  | { readonly op: "alias"; readonly dev: string; readonly alias: string }
  | { readonly op: "link-del"; readonly dev: string };

export interface NatPlan {
  readonly vif: string;
  readonly proxyvm: readonly ProxyOp[];
  /** present for fake-IP vifs only */
  readonly namespace?: {
    readonly name: string;
    readonly inside: readonly InsideOp[];
    readonly nft: string;
    /** the NAT table's mark (`natTableMark`): a table already carrying it is left as it is */
    readonly mark: string;
  };
}

export interface PlanOptions {
  /**
   * The namespace was created by this same change, so it holds no NAT table:
   * the table is only created. Replacing one (delete + define) makes the
   * kernel wait out an RCU grace period for the removed hooks, 10-30 ms.
   */
  readonly freshNamespace?: boolean;
  /**
   * The ProxyVM's owner mark (names.ts `ownerMark`), put on the namespace's
   * loopback: a namespace found at start without any other record is removed
   * only when it carries this agent's mark (namespace names are host-wide).
   */
  readonly owner?: string;
}

/** ICMP error types that embed the offending packet's header (RFC 792); ICMPv6 likewise (RFC 4443). */
const ICMP_ERRORS = "destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem";
const ICMPV6_ERRORS = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem";

/** The complete plan of one forwarded vif. */
export function planVif(desired: PlainVif | FakeVif, options: PlanOptions = {}): NatPlan {
  const proxyvm = planProxySide(desired);
  if (desired.kind === "plain") return { vif: desired.vif, proxyvm };
  const nft = planNatNft(desired, options);
  return {
    vif: desired.vif,
    proxyvm,
    namespace: {
      name: natNetnsName(desired.vif),
      inside: planInside(desired, options),
      nft,
      mark: readNatTableMark(nft) ?? "",
    },
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
 *   2. flush (unless the namespace is new), then add: a live change of the
 *      visible address leaves nothing of the old one behind;
 *   3. the VM's visible address as permanent neighbour and host route, so the
 *      kernel answers its ARP without asking back and passes reverse-path checks;
 *   4. links up last.
 */
export function planInside(d: FakeVif, options: PlanOptions = {}): InsideOp[] {
  const vif = d.vif;
  const peer = peerLinkName(vif);
  const ops: InsideOp[] = [];
  // a namespace made by this change holds nothing to flush, and its links
  // inherit addrgenmode none from it (NETNS_SYSCTLS)
  if (options.freshNamespace !== true) {
    const v6 = d.visible.ip6 !== undefined && d.visible.gateway6 !== undefined;
    const norm = (address: string) => (address.includes(":") ? normalizeIPv6(address) : address);
    const vifAddrs = [`${d.visible.gateway}/32`];
    const routes = [`${d.visible.ip}/32`];
    const neighs = [d.visible.ip];
    if (v6 && d.visible.gateway6 !== undefined && d.visible.ip6 !== undefined) {
      vifAddrs.push(`${norm(d.visible.gateway6)}/128`);
      routes.push(`${norm(d.visible.ip6)}/128`);
      neighs.push(norm(d.visible.ip6));
    }
    ops.push(
      { op: "addrgenmode-none", dev: vif },
      { op: "addrgenmode-none", dev: peer },
      { op: "flush-addrs", dev: vif, keep: vifAddrs },
      { op: "flush-addrs", dev: peer, keep: [`${d.native.ip}/32`] },
      { op: "flush-routes", dev: vif, keep: routes },
      { op: "flush-neighs", dev: vif, keep: neighs },
    );
  }
  ops.push(
    { op: "addr", dev: vif, address: d.visible.gateway, prefix: 32 },
    { op: "addr", dev: peer, address: d.native.ip, prefix: 32 },
  );
  const v6 = d.visible.ip6 !== undefined && d.visible.gateway6 !== undefined;
  if (v6 && d.visible.gateway6 !== undefined) {
    ops.push({ op: "addr", dev: vif, address: d.visible.gateway6, prefix: 128 });
  }
  if (options.owner !== undefined) ops.push({ op: "alias", dev: "lo", alias: options.owner });
  ops.push(
    { op: "link-up", dev: vif },
    { op: "link-up", dev: peer },
    { op: "route", dev: vif, dst: d.visible.ip, prefix: 32 },
    { op: "neigh", dev: vif, address: d.visible.ip, mac: d.mac },
  );
  if (v6 && d.visible.ip6 !== undefined) {
    ops.push(
      { op: "route", dev: vif, dst: d.visible.ip6, prefix: 128 },
      { op: "neigh", dev: vif, address: d.visible.ip6, mac: d.mac },
    );
  }
  return ops;
}

/** What a flush keeps, as a trailing comment of its `ip` line (`ip` itself cannot say it). */
function keeping(keep: readonly string[]): string {
  return keep.length === 0 ? "" : `  # keeping ${keep.join(" ")}`;
}

/** The `ip` command (run in the namespace, `ip -n NS ...`) doing what one inside operation does. */
export function renderInsideOp(op: InsideOp): string {
  switch (op.op) {
    case "addrgenmode-none":
      return `link set dev ${op.dev} addrgenmode none`;
    case "flush-addrs":
      return `addr flush dev ${op.dev}${keeping(op.keep)}`;
    case "flush-routes":
      return `route flush dev ${op.dev}${keeping(op.keep)}`;
    case "flush-neighs":
      return `neigh flush dev ${op.dev} nud permanent${keeping(op.keep)}`;
    case "addr":
      return `addr add ${op.address}/${op.prefix} dev ${op.dev}${op.address.includes(":") ? " nodad" : ""}`;
    case "link-up":
      return `link set dev ${op.dev} up`;
    case "route":
      return `route replace ${op.dst}/${op.prefix} dev ${op.dev}`;
    case "neigh":
      return `neigh replace ${op.address} lladdr ${op.mac} dev ${op.dev} nud permanent`;
    case "alias":
      return `link set dev ${op.dev} alias "${op.alias}"`;
  }
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
export function planNatNft(d: FakeVif, options: PlanOptions = {}): string {
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
  const replace =
    options.freshNamespace === true ? [] : [`table netdev ${NAT_TABLE}`, `delete table netdev ${NAT_TABLE}`];
  const body = [chain("from-vm", vif, fromVm), chain("from-proxyvm", peer, fromProxy)].join("\n");
  return [...replace, `table netdev ${NAT_TABLE} {`, `\tcomment "${natTableMark(body)}"`, body, "}", ""].join(
    "\n",
  );
}

/**
 * The mark a NAT table carries as its comment: its content's digest. A
 * restart or SIGHUP finds a table with the mark it would write and leaves it:
 * replacing a table with hooks costs the kernel an RCU grace period (10-30 ms
 * per VM, ~7 s for 200 VMs), while nothing else can run in the loop.
 */
export function natTableMark(body: string): string {
  return `qubes-fakeip-nat ${createHash("sha256").update(body).digest("hex").slice(0, 16)}`;
}

/** The mark in `nft list table` text, if any. */
export function readNatTableMark(listing: string): string | undefined {
  return /^\s*comment "(qubes-fakeip-nat [0-9a-f]{16})"\s*$/m.exec(listing)?.[1];
}

/** What the applier saw in the ProxyVM before structural changes. */
export interface ObservedStructure {
  readonly netnsExists: boolean;
  /** `vifX.Y` in the ProxyVM: Xen's own, the agent's veth end (by `ifalias`), or none */
  readonly proxyLink: "xen" | "ours" | "none";
}

export interface StructurePlan {
  /** in order; each names the namespace it acts in */
  readonly ops: readonly StructOp[];
  /** `true` when Xen's vif exists nowhere: the VM is gone and the vif must be cleaned up */
  readonly gone: boolean;
}

const NOTHING: StructurePlan = { ops: [], gone: false };

/**
 * Written inside a new NAT namespace before any link enters it: every link
 * (Xen's vif moved in, our veth end) then gets IPv6 address generation mode
 * "none" without a request per link (see `planInside`).
 */
export const NETNS_SYSCTLS: readonly (readonly [string, string])[] = [
  ["net/ipv6/conf/default/addr_gen_mode", "1"],
];

/**
 * Structural steps (namespaces, moves, veth pairs) from the observed shape to
 * the desired kind. Ordered by the kernel's name rules: a name is free in the
 * ProxyVM only after Xen's vif moved out (fake) or the agent's veth end is
 * deleted (back to plain).
 */
export function planStructure(d: PlainVif | FakeVif, observed: ObservedStructure): StructurePlan {
  const vif = d.vif;
  const netns = natNetnsName(vif);
  const { netnsExists, proxyLink } = observed;
  if (d.kind === "fake") {
    const veth: StructOp[] = [
      { op: "veth", dev: peerLinkName(vif), mac: d.mac, netns, peer: vif, peerMac: XEN_VIF_MAC },
      { op: "alias", dev: vif, alias: OWNED_ALIAS },
    ];
    if (proxyLink === "ours")
      return netnsExists ? NOTHING : { ops: [{ op: "link-del", dev: vif }], gone: true };
    if (proxyLink === "xen") {
      const create: StructOp[] = netnsExists ? [] : [{ op: "netns-add", netns, sysctls: NETNS_SYSCTLS }];
      return { ops: [...create, { op: "move-in", dev: vif, netns }, ...veth], gone: false };
    }
    // Xen's vif already inside (a step was interrupted): only the pair is missing.
    return netnsExists ? { ops: veth, gone: false } : { ...NOTHING, gone: true };
  }
  if (!netnsExists) return proxyLink === "xen" ? NOTHING : { ...NOTHING, gone: proxyLink === "none" };
  if (proxyLink === "xen") return { ops: [{ op: "netns-del", netns }], gone: false };
  return {
    ops: [
      ...(proxyLink === "ours" ? [{ op: "link-del", dev: vif } as const] : []),
      { op: "move-out", dev: vif, netns },
      { op: "netns-del", netns },
    ],
    gone: false,
  };
}

/** Removal of everything owned for a vif (offline, or its VM is gone). */
export function planTeardown(vif: string, observed: ObservedStructure): StructOp[] {
  // Deleting the namespace destroys everything inside it, Xen's vif included
  // (only done once the VM is offline), and with `vifX.Y-p` our `vifX.Y`, its peer.
  if (observed.netnsExists) return [{ op: "netns-del", netns: natNetnsName(vif) }];
  return observed.proxyLink === "ours" ? [{ op: "link-del", dev: vif }] : [];
}

/** The `ip` command doing what one structural operation does (`proxyvm` names the ProxyVM namespace). */
export function renderStructOp(op: StructOp, proxyvm: string | number): string {
  switch (op.op) {
    case "netns-add":
      return `netns add ${op.netns}`;
    case "netns-del":
      return `netns del ${op.netns}`;
    case "move-in":
      return `link set dev ${op.dev} netns ${op.netns}`;
    case "move-out":
      return `-n ${op.netns} link set dev ${op.dev} netns ${proxyvm}`;
    case "veth":
      return `link add ${op.dev} address ${op.mac} netns ${op.netns} type veth peer name ${op.peer} address ${op.peerMac}`;
    case "alias":
      return `link set dev ${op.dev} alias ${op.alias}`;
    case "link-del":
      return `link del dev ${op.dev}`;
  }
}

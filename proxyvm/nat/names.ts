/**
 * Names are ownership (STYLE.md: own what you touch, by name). Everything the
 * NAT component creates is derived from the vif name, so a restarted agent
 * finds and adopts (or removes) it without any other record.
 */

/** nft table inside each NAT namespace (netdev family: stateless, before the IP stack). */
export const NAT_TABLE = "qubes-fakeip-nat";
/** nft table in the ProxyVM: anti-spoofing allow-lists and VM isolation. */
export const ANTISPOOF_TABLE = "qubes-fakeip-antispoof";
/**
 * `ifalias` of the ProxyVM-side veth end the agent creates for a fake-IP vif.
 * It tells that `vifX.Y` apart from Xen's own `vifX.Y` (same name, same MAC).
 */
export const OWNED_ALIAS = "qubes-fakeip-nat";
/**
 * The alias a NAT namespace's loopback carries: which ProxyVM namespace (by
 * its inode, unique while it lives) made it. Names are host-wide (/run/netns),
 * and more than one ProxyVM namespace may share a host (the lab, tests).
 */
export function ownerMark(proxyvmNetnsInode: number | bigint): string {
  return `qubes-fakeip-nat owner=${proxyvmNetnsInode}`;
}

/** Xen's netback gives every vif this MAC; the NAT path forwards frames without rewriting MACs. */
export const XEN_VIF_MAC = "fe:ff:ff:ff:ff:ff";
/** The reconcile key of the ProxyVM-wide anti-spoofing table (not a vif name, so never collides). */
export const ANTISPOOF_KEY = "@antispoof";

const VIF_NAME = /^vif(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,3})$/;
const NAT_NETNS = /^(vif(?:0|[1-9][0-9]{0,4})\.(?:0|[1-9][0-9]{0,3}))-nat$/;

/** `vifX.Y-nat`: the namespace between a fake-IP VM and the ProxyVM. */
export function natNetnsName(vif: string): string {
  return `${vif}-nat`;
}

/** `vifX.Y-p`: the namespace's end of the veth pair towards the ProxyVM (at most 15 characters for valid vif names). */
export function peerLinkName(vif: string): string {
  return `${vif}-p`;
}

/** `true` for a name Xen's netback could give a vif (`vifDOMID.IDX`). */
export function isVifName(name: string): boolean {
  return VIF_NAME.test(name);
}

/** The vif of a NAT namespace name, or undefined when the name is not ours. */
export function vifOfNetns(name: string): string | undefined {
  return NAT_NETNS.exec(name)?.[1];
}

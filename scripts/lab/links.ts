/**
 * The lab's wiring, as Xen and the VMs' own start-up would leave it: veth
 * pairs with Xen's MACs, sys-net's routes and test addresses. Only `ip -n`
 * on the lab's own namespaces; nothing touches the host's namespace.
 */
import { ipIn, sysctlIn } from "./system.js";
import {
  FAR_ROUTER_IP,
  type LabPlan,
  type PlannedVm,
  SERVER_IP,
  UNREACHABLE_NET,
  VIF_MAC,
  VM_MAC,
  vmOf,
} from "./topology.js";

/** Qubes' native ranges (AppVMs, DispVMs): sys-net routes them back via the ProxyVM, no masquerade. */
export const NATIVE_RANGES = ["10.137.0.0/16", "10.138.0.0/16"] as const;

/**
 * A VM's eth0 (in `vm.ns`) and its vif (in `upstreamNs`), like Xen's netback:
 * the vif is named `vif<domid>.0` and carries `fe:ff:ff:ff:ff:ff`.
 */
export async function addVif(vm: PlannedVm, upstreamNs: string): Promise<void> {
  await ipIn(vm.ns, [
    "link",
    "add",
    "eth0",
    "address",
    VM_MAC,
    "type",
    "veth",
    "peer",
    "name",
    vm.vif,
    "address",
    VIF_MAC,
    "netns",
    upstreamNs,
  ]);
  await ipIn(vm.ns, ["link", "set", "eth0", "up"]);
  await ipIn(upstreamNs, ["link", "set", vm.vif, "up"]);
}

/**
 * sys-net: the "internet". Its own native IP on the ProxyVM's vif, routes to
 * Qubes' ranges via the ProxyVM (so the server sees native addresses), the
 * server address, a router hop that answers TTL-exceeded and
 * a net that answers host-unreachable (ICMP errors for the leak probe).
 */
export async function wireNetVm(plan: LabPlan, nativeIps: Readonly<Record<string, string>>): Promise<void> {
  const netvm = vmOf(plan, "netvm");
  const proxy = vmOf(plan, "proxyvm");
  const own = nativeIps[netvm.name];
  const proxyIp = nativeIps[proxy.name];
  if (own === undefined || proxyIp === undefined) {
    throw new Error(
      `Cannot wire ${netvm.name}: the native IPs of ${netvm.name} and ${proxy.name} are unknown (dom0 store missing)`,
    );
  }
  const ns = netvm.ns;
  await sysctlIn(ns, "net.ipv4.ip_forward", "1");
  await ipIn(ns, ["addr", "add", `${own}/32`, "dev", proxy.vif]);
  await ipIn(ns, ["route", "add", proxyIp, "dev", proxy.vif, "scope", "link"]);
  for (const range of NATIVE_RANGES)
    await ipIn(ns, ["route", "add", range, "via", proxyIp, "dev", proxy.vif]);
  // The server address lives on lo (no dummy module needed). The far net sits
  // behind a veth pair inside sys-net whose far end has no address: packets
  // for it are forwarded (TTL checked first) and then vanish in neighbour
  // resolution.
  await ipIn(ns, ["addr", "add", `${SERVER_IP}/32`, "dev", "lo"]);
  await ipIn(ns, ["link", "add", "far0", "type", "veth", "peer", "name", "far1"]);
  await ipIn(ns, ["addr", "add", `${FAR_ROUTER_IP}/24`, "dev", "far0"]);
  await ipIn(ns, ["link", "set", "far0", "up"]);
  await ipIn(ns, ["link", "set", "far1", "up"]);
  await ipIn(ns, ["route", "add", "unreachable", UNREACHABLE_NET]);
}

/** A networked VM routes: the ProxyVM forwards (qubes-core-agent enables it on network-providing VMs). */
export async function enableForwarding(ns: string): Promise<void> {
  await sysctlIn(ns, "net.ipv4.ip_forward", "1");
}

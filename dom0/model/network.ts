/**
 * Network properties of a VM, as pure functions over a collection snapshot.
 * The rules follow Qubes R4 (qubes/vm/mix/net.py); where this project
 * differs it says so.
 */
import {
  formatIPv4,
  formatIPv6,
  isIPv4,
  isIPv6,
  netmaskFromPrefix,
  normalizeIPv6,
  prefixFromNetmask,
} from "../../shared/net/ip.js";
import { boolProperty, type Collection, type VmRecord } from "./collection.js";
import {
  FEATURE_FAKE_GATEWAY,
  FEATURE_FAKE_GATEWAY6,
  FEATURE_FAKE_IP,
  FEATURE_FAKE_IP6,
  FEATURE_FAKE_NETMASK,
  FEATURE_IPV6,
  featureWithNetvm,
  featureWithTemplate,
  templateOf,
} from "./features.js";

/** Qubes' virtual DNS servers (qubes/vm/mix/net.py `dns`), never faked. */
export const DNS_SERVERS: readonly [string, string] = ["10.139.1.1", "10.139.1.2"];
/** Default MAC of every VM's NIC (qubes/vm/mix/net.py `mac`). */
export const DEFAULT_MAC = "00:16:3e:5e:6c:00";
/** Every VM gets a host route: the netmask its network provider hands out (net.py `netmask`). */
export const HOST_NETMASK = "255.255.255.255";
/** qubes.config.qubes_ipv6_prefix; `a89` is 10.137 (VMs by qid), `a8a` is 10.138 (disposables by dispid). */
const IPV6_PREFIX = 0xfd0924ef4179n << 80n;

export function providesNetwork(vm: VmRecord): boolean {
  return boolProperty(vm, "provides_network");
}

/**
 * The name of the netvm a VM asks for, before checks: the explicit property
 * ("" = none), else the class default — none for dom0 and templates (Qubes R4
 * templates are not networked by default), the disposable template's netvm for
 * a DispVM, `default_netvm` for everything else.
 */
export function intendedNetvmName(collection: Collection, vm: VmRecord): string | undefined {
  if (vm.vmClass === "AdminVM") return undefined;
  const explicit = vm.properties.get("netvm");
  if (explicit !== undefined) return explicit === "" ? undefined : explicit;
  if (vm.vmClass === "TemplateVM") return undefined;
  if (vm.vmClass === "DispVM") {
    const template = templateOf(collection, vm);
    if (template === undefined || template.vmClass === "DispVM") return undefined;
    return netvmOf(collection, template)?.name;
  }
  const global = collection.globals.get("default_netvm");
  return global === undefined || global === "" ? undefined : global;
}

/** True when following netvm links from `start` reaches `target` (a loop if `target` used `start`). */
export function reaches(collection: Collection, start: VmRecord, target: VmRecord): boolean {
  const seen = new Set<string>();
  for (let current: VmRecord | undefined = start; current !== undefined; ) {
    if (current.name === target.name) return true;
    if (seen.has(current.name)) return false;
    seen.add(current.name);
    const next = intendedNetvmName(collection, current);
    current = next === undefined ? undefined : collection.vms.get(next);
  }
  return false;
}

/**
 * The VM's netvm, or `undefined` when it has none. A netvm that does not
 * exist, does not provide network, or would close a loop counts as none —
 * the same as Qubes does when it finds a loop while loading qubes.xml.
 */
export function netvmOf(collection: Collection, vm: VmRecord): VmRecord | undefined {
  const name = intendedNetvmName(collection, vm);
  if (name === undefined) return undefined;
  const target = collection.vms.get(name);
  if (target === undefined || !providesNetwork(target)) return undefined;
  if (reaches(collection, target, vm)) return undefined;
  return target;
}

export function isNetworked(collection: Collection, vm: VmRecord): boolean {
  return providesNetwork(vm) || netvmOf(collection, vm) !== undefined;
}

/** `10.137.x.y` / `10.138.x.y` with x = id >> 8, y = id & 255 (net.py `get_ip_for_vm`). */
export function ipForId(second: 137 | 138, id: number): string {
  return formatIPv4(((10 << 24) | (second << 16) | (((id >> 8) & 0xff) << 8) | (id & 0xff)) >>> 0);
}

/** `fd09:24ef:4179::a89:<id hex>` / `::a8a:<id hex>` (net.py `get_ip6_for_vm`). */
export function ip6ForId(kind: 0xa89 | 0xa8a, id: number): string {
  return formatIPv6(IPV6_PREFIX | (BigInt(kind) << 16n) | BigInt(id));
}

function dispid(vm: VmRecord): number | undefined {
  const text = vm.properties.get("dispid");
  return text !== undefined && /^[0-9]{1,6}$/.test(text) ? Number(text) : undefined;
}

/** The native IPv4 address: the `ip` property, else derived from dispid (disposables) or qid. */
export function nativeIp(collection: Collection, vm: VmRecord): string | undefined {
  if (!isNetworked(collection, vm)) return undefined;
  const explicit = vm.properties.get("ip");
  if (explicit !== undefined && isIPv4(explicit)) return explicit;
  const disp = vm.vmClass === "DispVM" ? dispid(vm) : undefined;
  return disp !== undefined ? ipForId(138, disp) : ipForId(137, vm.qid);
}

/** Feature `ipv6`, inherited along the netvm chain; Qubes reads "" as false. */
export function ipv6Enabled(collection: Collection, vm: VmRecord): boolean {
  const value = featureWithNetvm(vm, FEATURE_IPV6, (v) => netvmOf(collection, v));
  return value !== undefined && value !== "";
}

export function nativeIp6(collection: Collection, vm: VmRecord): string | undefined {
  if (!isNetworked(collection, vm) || !ipv6Enabled(collection, vm)) return undefined;
  const explicit = vm.properties.get("ip6");
  if (explicit !== undefined && isIPv6(explicit)) return normalizeIPv6(explicit);
  const disp = vm.vmClass === "DispVM" ? dispid(vm) : undefined;
  return disp !== undefined ? ip6ForId(0xa8a, disp) : ip6ForId(0xa89, vm.qid);
}

/** A feature inherited from the template; "" (Qubes' false) counts as not set. */
function fakeFeature(collection: Collection, vm: VmRecord, name: string): string | undefined {
  const value = featureWithTemplate(collection, vm, name);
  return value === undefined || value === "" ? undefined : value;
}

export function visibleIp(collection: Collection, vm: VmRecord): string | undefined {
  if (!isNetworked(collection, vm)) return undefined;
  return fakeFeature(collection, vm, FEATURE_FAKE_IP) ?? nativeIp(collection, vm);
}

/** Netmask a network provider hands to its clients: a host mask. */
export function netmask(collection: Collection, vm: VmRecord): string | undefined {
  return isNetworked(collection, vm) ? HOST_NETMASK : undefined;
}

/** Gateway a network provider hands to its clients: its own visible IP. */
export function gateway(collection: Collection, vm: VmRecord): string | undefined {
  return providesNetwork(vm) ? visibleIp(collection, vm) : undefined;
}

export function visibleGateway(collection: Collection, vm: VmRecord): string | undefined {
  const netvm = netvmOf(collection, vm);
  if (netvm === undefined) return undefined;
  return fakeFeature(collection, vm, FEATURE_FAKE_GATEWAY) ?? gateway(collection, netvm);
}

/** The fake netmask is stored as given (dotted or prefix length) and published dotted. */
export function visibleNetmask(collection: Collection, vm: VmRecord): string | undefined {
  const netvm = netvmOf(collection, vm);
  if (netvm === undefined) return undefined;
  const fake = fakeFeature(collection, vm, FEATURE_FAKE_NETMASK);
  if (fake !== undefined) {
    try {
      return netmaskFromPrefix(prefixFromNetmask(fake));
    } catch {
      // An invalid value written by hand into qubes.xml: fall back to the
      // provider's mask rather than publish garbage.
    }
  }
  return netmask(collection, netvm);
}

/** Beyond Qubes: `net.fake-ip6` hides the native IPv6 address like `net.fake-ip` does for IPv4. */
export function visibleIp6(collection: Collection, vm: VmRecord): string | undefined {
  const native = nativeIp6(collection, vm);
  if (native === undefined) return undefined;
  const fake = fakeFeature(collection, vm, FEATURE_FAKE_IP6);
  return fake !== undefined && isIPv6(fake) ? normalizeIPv6(fake) : native;
}

export function gateway6(collection: Collection, vm: VmRecord): string | undefined {
  return providesNetwork(vm) && ipv6Enabled(collection, vm) ? visibleIp6(collection, vm) : undefined;
}

export function visibleGateway6(collection: Collection, vm: VmRecord): string | undefined {
  const netvm = netvmOf(collection, vm);
  if (netvm === undefined || !ipv6Enabled(collection, vm)) return undefined;
  const fake = fakeFeature(collection, vm, FEATURE_FAKE_GATEWAY6);
  return fake !== undefined && isIPv6(fake) ? normalizeIPv6(fake) : gateway6(collection, netvm);
}

export function dnsServers(collection: Collection, vm: VmRecord): readonly [string, string] | undefined {
  return isNetworked(collection, vm) ? DNS_SERVERS : undefined;
}

/** Every VM whose netvm is `provider`, running or not, ordered by qid. */
export function connectedVms(collection: Collection, provider: VmRecord): VmRecord[] {
  return [...collection.vms.values()]
    .filter((vm) => netvmOf(collection, vm)?.name === provider.name)
    .sort((a, b) => a.qid - b.qid);
}

/** The legacy `/qubes-vm-type` (qubes/vm/qubesvm.py `create_qdb_entries`). */
export function qubesVmType(
  collection: Collection,
  vm: VmRecord,
): "AppVM" | "ProxyVM" | "NetVM" | "TemplateVM" {
  if (vm.vmClass === "TemplateVM") return "TemplateVM";
  if (providesNetwork(vm)) return netvmOf(collection, vm) === undefined ? "NetVM" : "ProxyVM";
  return "AppVM";
}

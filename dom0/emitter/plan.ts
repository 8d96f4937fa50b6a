/**
 * The emitter's planner (pure): from the collection, every VM's firewall rules,
 * the current time and the set of running VMs, the complete set of QubesDB keys
 * each running VM should hold under the keys dom0 owns (shared/spec/keys.md).
 */
import { ALLOW_ALL_RULES, type FirewallRule, planFirewallKeys } from "../../shared/firewall/index.js";
import {
  CONNECTED_IPS_KEY,
  CONNECTED_IPS6_KEY,
  firewallRulesPrefix,
  firewallSignalKey,
  formatConnectedIps,
  mappedIpKey,
  mappedIpPrefix,
  NAME_KEY,
  NETVM_GATEWAY_KEY,
  NETVM_GATEWAY6_KEY,
  NETVM_NETMASK_KEY,
  NETVM_NETWORK_KEY,
  NETVM_PRIMARY_DNS_KEY,
  NETVM_SECONDARY_DNS_KEY,
  QUBES_GATEWAY_KEY,
  QUBES_GATEWAY6_KEY,
  QUBES_IP_KEY,
  QUBES_IP6_KEY,
  QUBES_MAC_KEY,
  QUBES_NETMASK_KEY,
  QUBES_PRIMARY_DNS_KEY,
  QUBES_SECONDARY_DNS_KEY,
  QUBES_VM_TYPE_KEY,
  TYPE_KEY,
} from "../../shared/keys.js";
import type { Collection, VmRecord } from "../model/collection.js";
import {
  connectedVms,
  DEFAULT_MAC,
  DNS_SERVERS,
  gateway,
  gateway6,
  nativeIp,
  nativeIp6,
  netmask,
  netvmOf,
  providesNetwork,
  qubesVmType,
  visibleGateway,
  visibleGateway6,
  visibleIp,
  visibleIp6,
  visibleNetmask,
} from "../model/network.js";
import { MAX_VALUE_BYTES } from "./owned-keys.js";

/** Beyond Qubes' two leaves: the client's visible IPv6 address and gateway, for the agent's IPv6 NAT. */
export const MAPPED_IP6_LEAVES = { ip: "visible-ip6", gateway: "visible-gateway6" } as const;

export interface PlanInput {
  readonly collection: Collection;
  /** firewall rules by VM name; a VM missing here has the default (accept everything) */
  readonly firewall: ReadonlyMap<string, readonly FirewallRule[]>;
  /** UNIX seconds: rules expired at this time are not published */
  readonly now: number;
  /** names of running VMs; only they get keys, and only running clients get mapped-ip and firewall keys */
  readonly running: ReadonlySet<string>;
}

export type KeyMap = Map<string, string>;

/**
 * Splits a space-separated address list into values of at most
 * MAX_VALUE_BYTES, whole addresses only. The first part goes to
 * `/connected-ips`, the others to `/connected-ips/1`, `/connected-ips/2`, ...
 * A ProxyVM with ~250 clients already exceeds one value (299 IPv4 addresses
 * are 3.7 kB); Qubes' own dom0 fails there. Readers join `/connected-ips`
 * and its numbered continuations (docs/dom0.md).
 */
export function chunkAddresses(addresses: readonly string[]): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 0;
  for (const address of addresses) {
    const added = current.length === 0 ? address.length : address.length + 1;
    if (size + added > MAX_VALUE_BYTES && current.length > 0) {
      chunks.push(formatConnectedIps(current));
      current = [];
      size = 0;
    }
    size += current.length === 0 ? address.length : address.length + 1;
    current.push(address);
  }
  chunks.push(formatConnectedIps(current));
  return chunks;
}

function setAddressList(keys: KeyMap, key: string, addresses: readonly string[]): void {
  chunkAddresses(addresses).forEach((value, index) => {
    keys.set(index === 0 ? key : `${key}/${index}`, value);
  });
}

function setIf(keys: KeyMap, key: string, value: string | undefined): void {
  if (value !== undefined) keys.set(key, value);
}

/** Keys in a VM's own DB that describe the VM itself (keys.md, first table). */
function planOwnKeys(c: Collection, vm: VmRecord, keys: KeyMap): void {
  keys.set(NAME_KEY, vm.name);
  keys.set(TYPE_KEY, vm.vmClass);
  keys.set(QUBES_VM_TYPE_KEY, qubesVmType(c, vm));
  if (netvmOf(c, vm) === undefined) return;
  keys.set(QUBES_MAC_KEY, vm.properties.get("mac") ?? DEFAULT_MAC);
  setIf(keys, QUBES_IP_KEY, visibleIp(c, vm));
  setIf(keys, QUBES_NETMASK_KEY, visibleNetmask(c, vm));
  setIf(keys, QUBES_GATEWAY_KEY, visibleGateway(c, vm));
  keys.set(QUBES_PRIMARY_DNS_KEY, DNS_SERVERS[0]);
  keys.set(QUBES_SECONDARY_DNS_KEY, DNS_SERVERS[1]);
  setIf(keys, QUBES_IP6_KEY, visibleIp6(c, vm));
  setIf(keys, QUBES_GATEWAY6_KEY, visibleGateway6(c, vm));
}

/**
 * Rule sets already formatted, by rule list, family and which rules have
 * expired. Rule lists are immutable once loaded, so planning the same list
 * again (before and after a change, or at every sync of `serve`) formats its
 * rules once. Still pure: the cache only remembers results of a pure function.
 */
const ruleSetCache = new WeakMap<readonly FirewallRule[], Map<string, Map<string, string>>>();

function planRuleSet(rules: readonly FirewallRule[], family: 4 | 6, now: number): Map<string, string> {
  let byInput = ruleSetCache.get(rules);
  if (byInput === undefined) {
    byInput = new Map();
    ruleSetCache.set(rules, byInput);
  }
  // `now` only matters through the rules that have expired by then.
  const expired: number[] = [];
  rules.forEach((rule, index) => {
    if (rule.expire !== undefined && rule.expire <= now) expired.push(index);
  });
  const key = `${family}:${expired.join(",")}`;
  let planned = byInput.get(key);
  if (planned === undefined) {
    planned = planFirewallKeys(rules, family, now);
    byInput.set(key, planned);
  }
  return planned;
}

/** Rule keys, then the signal key, for one address (keys.md "Firewall publication order"). */
function planFirewall(
  address: string,
  rules: readonly FirewallRule[],
  family: 4 | 6,
  now: number,
  keys: KeyMap,
) {
  const prefix = firewallRulesPrefix(address);
  for (const [name, value] of planRuleSet(rules, family, now)) keys.set(`${prefix}${name}`, value);
  keys.set(firewallSignalKey(address), "");
}

/** Keys in a network provider's DB: its own gateway data and, per client, mapping and firewall. */
function planProviderKeys(input: PlanInput, vm: VmRecord, keys: KeyMap): void {
  const c = input.collection;
  const own = gateway(c, vm);
  setIf(keys, NETVM_NETWORK_KEY, own);
  setIf(keys, NETVM_GATEWAY_KEY, own);
  setIf(keys, NETVM_NETMASK_KEY, netmask(c, vm));
  keys.set(NETVM_PRIMARY_DNS_KEY, DNS_SERVERS[0]);
  keys.set(NETVM_SECONDARY_DNS_KEY, DNS_SERVERS[1]);
  setIf(keys, NETVM_GATEWAY6_KEY, gateway6(c, vm));
  const clients = connectedVms(c, vm);
  // Native addresses, not Qubes' visible ones: past the NAT namespace the
  // ProxyVM only ever sees a fake-IP client's native address (keys.md).
  const ips: string[] = [];
  const ips6: string[] = [];
  for (const client of clients) {
    const n = nativeIp(c, client);
    const n6 = nativeIp6(c, client);
    if (n !== undefined) ips.push(n);
    if (n6 !== undefined) ips6.push(n6);
    if (n === undefined || !input.running.has(client.name)) continue;
    setIf(keys, mappedIpKey(n, "visible-ip"), visibleIp(c, client));
    setIf(keys, mappedIpKey(n, "visible-gateway"), visibleGateway(c, client));
    setIf(keys, `${mappedIpPrefix(n)}${MAPPED_IP6_LEAVES.ip}`, visibleIp6(c, client));
    setIf(keys, `${mappedIpPrefix(n)}${MAPPED_IP6_LEAVES.gateway}`, visibleGateway6(c, client));
    const rules = input.firewall.get(client.name) ?? ALLOW_ALL_RULES;
    planFirewall(n, rules, 4, input.now, keys);
    if (n6 !== undefined) planFirewall(n6, rules, 6, input.now, keys);
  }
  setAddressList(keys, CONNECTED_IPS_KEY, ips);
  setAddressList(keys, CONNECTED_IPS6_KEY, ips6);
}

/** The keys of one VM (whether or not it runs). */
export function planVmKeys(input: PlanInput, vm: VmRecord): KeyMap {
  const keys: KeyMap = new Map();
  planOwnKeys(input.collection, vm, keys);
  if (providesNetwork(vm)) planProviderKeys(input, vm, keys);
  return keys;
}

/** Every running VM's complete dom0-owned keys, by VM name (dom0 itself has no QubesDB of ours). */
export function planKeys(input: PlanInput): Map<string, KeyMap> {
  const plan = new Map<string, KeyMap>();
  for (const vm of input.collection.vms.values()) {
    if (vm.vmClass === "AdminVM" || !input.running.has(vm.name)) continue;
    plan.set(vm.name, planVmKeys(input, vm));
  }
  return plan;
}

/** True when two key maps hold the same keys and values. */
export function sameKeys(
  a: ReadonlyMap<string, string> | undefined,
  b: ReadonlyMap<string, string> | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}

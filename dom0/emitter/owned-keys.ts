/**
 * Which QubesDB keys dom0 owns. The applier reads, writes and removes only
 * these; everything else in a VM's DB (the agent's `/qubes-firewall-handled/`,
 * `/qubes-firewall-error/`, `/dns/`, Qubes' other keys) is never touched.
 */
import {
  CONNECTED_IPS_KEY,
  CONNECTED_IPS6_KEY,
  FIREWALL_PREFIX,
  MAPPED_IP_PREFIX,
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

/** Keys dom0 owns exactly (shared/spec/keys.md, the two dom0 tables). */
export const DOM0_EXACT_KEYS: ReadonlySet<string> = new Set([
  NAME_KEY,
  TYPE_KEY,
  QUBES_VM_TYPE_KEY,
  QUBES_MAC_KEY,
  QUBES_IP_KEY,
  QUBES_NETMASK_KEY,
  QUBES_GATEWAY_KEY,
  QUBES_PRIMARY_DNS_KEY,
  QUBES_SECONDARY_DNS_KEY,
  QUBES_IP6_KEY,
  QUBES_GATEWAY6_KEY,
  NETVM_NETWORK_KEY,
  NETVM_GATEWAY_KEY,
  NETVM_NETMASK_KEY,
  NETVM_PRIMARY_DNS_KEY,
  NETVM_SECONDARY_DNS_KEY,
  NETVM_GATEWAY6_KEY,
  CONNECTED_IPS_KEY,
  CONNECTED_IPS6_KEY,
]);

/**
 * Subtrees dom0 owns entirely. `/qubes-firewall/` does not cover
 * `/qubes-firewall-handled/` (the agent's); `/connected-ips/N` are the
 * continuations of a long `/connected-ips` (plan.ts `chunkAddresses`).
 */
export const DOM0_PREFIXES: readonly string[] = [
  MAPPED_IP_PREFIX,
  FIREWALL_PREFIX,
  `${CONNECTED_IPS_KEY}/`,
  `${CONNECTED_IPS6_KEY}/`,
];

/**
 * What the applier multireads to see every dom0-owned key: the whole DB, in
 * one request per VM, filtered with `isDom0Key`. Five narrower multireads
 * (`/name`, `/type`, `/qubes-`, `/connected-ips`, `/mapped-ip/`) cost five
 * round trips for the same data: the other keys a VM holds are few.
 */
export const DOM0_READ_PREFIXES: readonly string[] = ["/"];

/** QubesDB values are at most 3071 bytes (spec/qubesdb.md, the reference's QDB_MAX_DATA - 1). */
export const MAX_VALUE_BYTES = 3071;

export function isDom0Key(key: string): boolean {
  return DOM0_EXACT_KEYS.has(key) || DOM0_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/**
 * Features: names, aliases, validation on set, and the two inheritance rules
 * Qubes uses (qubes/features.py): `check_with_template` (the VM, then its
 * template chain) for `net.fake-*`, `check_with_netvm` (the VM, then its netvm
 * chain) for `ipv6`.
 */
import { InvalidInputError } from "../../shared/errors.js";
import { isIPv4, isIPv6, normalizeIPv6, prefixFromNetmask } from "../../shared/net/ip.js";
import type { Collection, VmRecord } from "./collection.js";

export const FEATURE_FAKE_IP = "net.fake-ip";
export const FEATURE_FAKE_GATEWAY = "net.fake-gateway";
export const FEATURE_FAKE_NETMASK = "net.fake-netmask";
/** This project's additions for the agent's IPv6 support (not in Qubes R4). */
export const FEATURE_FAKE_IP6 = "net.fake-ip6";
export const FEATURE_FAKE_GATEWAY6 = "net.fake-gateway6";
export const FEATURE_IPV6 = "ipv6";

/** The original fake-IP design spelled the features with a slash; Qubes R4 uses dots. */
const ALIASES: ReadonlyMap<string, string> = new Map([
  ["net/fake-ip", FEATURE_FAKE_IP],
  ["net/fake-gateway", FEATURE_FAKE_GATEWAY],
  ["net/fake-netmask", FEATURE_FAKE_NETMASK],
  ["net/fake-ip6", FEATURE_FAKE_IP6],
  ["net/fake-gateway6", FEATURE_FAKE_GATEWAY6],
]);

/** Feature names as the Qubes Admin API allows them (letters, digits, `_ . -`). */
const FEATURE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** The canonical (stored) name of a feature: aliases map to the Qubes R4 name. */
export function canonicalFeatureName(name: string): string {
  return ALIASES.get(name) ?? name;
}

function failSet(vm: string, name: string, value: string, why: string): never {
  throw new InvalidInputError(`Cannot set feature "${name}" of "${vm}" to "${value}": ${why}`);
}

/**
 * Validates a feature before it is stored; returns the canonical name and the
 * value to store. An empty value is always allowed: Qubes reads "" as false,
 * which lets a VM switch off a fake address its template sets.
 */
export function validateFeature(
  vmName: string,
  name: string,
  value: string,
): { name: string; value: string } {
  const canonical = canonicalFeatureName(name);
  if (!FEATURE_NAME.test(canonical)) {
    throw new InvalidInputError(
      `Cannot set feature "${name}" of "${vmName}": a feature name has 1..64 letters, digits, "_", "." or "-"`,
    );
  }
  if (CONTROL_CHARS.test(value)) failSet(vmName, canonical, value, "control characters are not allowed");
  if (value === "") return { name: canonical, value };
  switch (canonical) {
    case FEATURE_FAKE_IP:
    case FEATURE_FAKE_GATEWAY:
      if (!isIPv4(value)) failSet(vmName, canonical, value, "not an IPv4 address");
      return { name: canonical, value };
    case FEATURE_FAKE_NETMASK:
      try {
        prefixFromNetmask(value);
      } catch (error) {
        const why = /contiguous/.test((error as Error).message)
          ? "the netmask is not contiguous"
          : "not a dotted netmask or a prefix length";
        failSet(vmName, canonical, value, why);
      }
      return { name: canonical, value };
    case FEATURE_FAKE_IP6:
    case FEATURE_FAKE_GATEWAY6:
      if (!isIPv6(value)) failSet(vmName, canonical, value, "not an IPv6 address");
      return { name: canonical, value: normalizeIPv6(value) };
    default:
      return { name: canonical, value };
  }
}

/** The template a VM is based on (AppVM → TemplateVM, DispVM → its disposable template), if any. */
export function templateOf(collection: Collection, vm: VmRecord): VmRecord | undefined {
  if (vm.vmClass !== "AppVM" && vm.vmClass !== "DispVM") return undefined;
  const name = vm.properties.get("template") ?? collection.globals.get("default_template");
  return name === undefined || name === "" ? undefined : collection.vms.get(name);
}

/** `check_with_template`: the VM's own value, else its template chain's; `undefined` when nobody sets it. */
export function featureWithTemplate(collection: Collection, vm: VmRecord, name: string): string | undefined {
  const seen = new Set<string>();
  for (
    let current: VmRecord | undefined = vm;
    current !== undefined;
    current = templateOf(collection, current)
  ) {
    if (seen.has(current.name)) return undefined;
    seen.add(current.name);
    const value = current.features.get(name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** `check_with_netvm`: the VM's own value, else its netvm chain's. `netvmOf` resolves one hop. */
export function featureWithNetvm(
  vm: VmRecord,
  name: string,
  netvmOf: (vm: VmRecord) => VmRecord | undefined,
): string | undefined {
  const seen = new Set<string>();
  for (let current: VmRecord | undefined = vm; current !== undefined; current = netvmOf(current)) {
    if (seen.has(current.name)) return undefined;
    seen.add(current.name);
    const value = current.features.get(name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/**
 * VM properties as `qvm-prefs` shows and sets them: the ones this project
 * models are validated and have computed defaults; any other property name is
 * stored as given (qubes.xml carries many: memory, kernel, virt_mode, ...).
 */
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";
import { isIPv4, isIPv6, normalizeIPv6 } from "../../shared/net/ip.js";
import { type Collection, parseBool, type VmRecord } from "./collection.js";
import { templateOf } from "./features.js";
import {
  connectedVms,
  DEFAULT_MAC,
  gateway,
  gateway6,
  nativeIp,
  nativeIp6,
  netmask,
  netvmOf,
  providesNetwork,
  reaches,
  visibleGateway,
  visibleGateway6,
  visibleIp,
  visibleIp6,
  visibleNetmask,
} from "./network.js";

export interface PropertyValue {
  readonly name: string;
  /** as shown by qvm-prefs ("" for none) */
  readonly value: string;
  /** true when the value is a default (not stored in qubes.xml) */
  readonly isDefault: boolean;
}

const READ_ONLY = new Set(["name", "qid", "uuid", "klass"]);
/** Computed from other properties and features (Qubes' `stateless_property`): shown, never stored. */
const COMPUTED: ReadonlyArray<readonly [string, (c: Collection, vm: VmRecord) => string | undefined]> = [
  ["gateway", gateway],
  ["gateway6", gateway6],
  ["netmask", netmask],
  ["visible_gateway", visibleGateway],
  ["visible_gateway6", visibleGateway6],
  ["visible_ip", visibleIp],
  ["visible_ip6", visibleIp6],
  ["visible_netmask", visibleNetmask],
];
const COMPUTED_NAMES = new Set(COMPUTED.map(([name]) => name));
const RAW_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

function hasNetwork(vm: VmRecord): boolean {
  return vm.vmClass !== "AdminVM";
}

function hasTemplate(vm: VmRecord): boolean {
  return vm.vmClass === "AppVM" || vm.vmClass === "DispVM";
}

/** The properties modeled for this VM's class with their current value. */
function modeled(c: Collection, vm: VmRecord): PropertyValue[] {
  const explicit = (name: string) => vm.properties.has(name);
  const out: PropertyValue[] = [
    { name: "klass", value: vm.vmClass, isDefault: false },
    { name: "name", value: vm.name, isDefault: false },
    { name: "qid", value: String(vm.qid), isDefault: false },
  ];
  const label = vm.properties.get("label");
  if (label !== undefined) out.push({ name: "label", value: c.labels.get(label) ?? label, isDefault: false });
  if (hasNetwork(vm)) {
    out.push(
      { name: "netvm", value: netvmOf(c, vm)?.name ?? "", isDefault: !explicit("netvm") },
      {
        name: "provides_network",
        value: providesNetwork(vm) ? "True" : "False",
        isDefault: !explicit("provides_network"),
      },
      { name: "ip", value: nativeIp(c, vm) ?? "", isDefault: !explicit("ip") },
      { name: "ip6", value: nativeIp6(c, vm) ?? "", isDefault: !explicit("ip6") },
      { name: "mac", value: vm.properties.get("mac") ?? DEFAULT_MAC, isDefault: !explicit("mac") },
    );
    for (const [name, compute] of COMPUTED) out.push({ name, value: compute(c, vm) ?? "", isDefault: true });
  }
  if (hasTemplate(vm)) {
    out.push({ name: "template", value: templateOf(c, vm)?.name ?? "", isDefault: !explicit("template") });
  }
  return out;
}

/** Every property of the VM (modeled and stored), sorted by name, as `qvm-prefs VM` lists them. */
export function listProperties(c: Collection, vm: VmRecord): PropertyValue[] {
  const byName = new Map(modeled(c, vm).map((p) => [p.name, p]));
  for (const [name, value] of vm.properties) {
    if (!byName.has(name)) byName.set(name, { name, value, isDefault: false });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function getProperty(c: Collection, vm: VmRecord, name: string): PropertyValue {
  const found = listProperties(c, vm).find((p) => p.name === name);
  if (found === undefined)
    throw new NotFoundError(`Cannot read property "${name}" of "${vm.name}": no such property`);
  return found;
}

function failSet(vm: VmRecord, name: string, value: string, why: string): never {
  throw new InvalidInputError(`Cannot set property "${name}" of "${vm.name}" to "${value}": ${why}`);
}

function parseBoolText(vm: VmRecord, name: string, value: string): string {
  const parsed = value === "" ? undefined : parseBool(value);
  if (parsed === undefined) failSet(vm, name, value, "not a boolean (True or False)");
  return parsed ? "True" : "False";
}

function checkNetvm(c: Collection, vm: VmRecord, value: string): string {
  if (value === "" || value.toLowerCase() === "none") return "";
  const target = c.vms.get(value);
  if (target === undefined) failSet(vm, "netvm", value, "no such qube");
  if (!providesNetwork(target)) failSet(vm, "netvm", value, `the qube "${value}" does not provide network`);
  if (target.name === vm.name || reaches(c, target, vm))
    failSet(vm, "netvm", value, "loops in network are unsupported");
  return value;
}

function checkTemplate(c: Collection, vm: VmRecord, value: string): string {
  const target = c.vms.get(value);
  if (target === undefined) failSet(vm, "template", value, "no such qube");
  if (vm.vmClass === "DispVM") {
    if (target.vmClass !== "AppVM" || !parseBool(target.properties.get("template_for_dispvms") ?? "")) {
      failSet(vm, "template", value, "not a disposable template (an AppVM with template_for_dispvms True)");
    }
  } else if (target.vmClass !== "TemplateVM") {
    failSet(vm, "template", value, "not a TemplateVM");
  }
  return value;
}

function checkLabel(c: Collection, vm: VmRecord, value: string): string {
  if (c.labels.has(value)) return value;
  for (const [id, name] of c.labels) if (name === value) return id;
  return failSet(vm, "label", value, `no such label (known: ${[...c.labels.values()].join(", ")})`);
}

/** Validates a new value; returns the text to store in qubes.xml. */
export function checkPropertyValue(c: Collection, vm: VmRecord, name: string, value: string): string {
  if (READ_ONLY.has(name) || COMPUTED_NAMES.has(name)) failSet(vm, name, value, "the property is read-only");
  if (/[\u0000-\u001f\u007f]/.test(value)) failSet(vm, name, value, "control characters are not allowed");
  const network = hasNetwork(vm);
  switch (name) {
    case "label":
      return checkLabel(c, vm, value);
    case "netvm":
      if (!network) failSet(vm, name, value, "dom0 has no netvm");
      return checkNetvm(c, vm, value);
    case "provides_network": {
      const text = parseBoolText(vm, name, value);
      const users = connectedVms(c, vm);
      if (text === "False" && users.length > 0) {
        const names = users.map((u) => u.name).join(", ");
        failSet(vm, name, value, `the qube is still used by ${names}; change their netvm first`);
      }
      return text;
    }
    case "template_for_dispvms":
    case "autostart":
    case "debug":
    case "include_in_backups":
      return parseBoolText(vm, name, value);
    case "template":
      if (!hasTemplate(vm)) failSet(vm, name, value, `a ${vm.vmClass} has no template`);
      return checkTemplate(c, vm, value);
    case "ip":
      if (!isIPv4(value)) failSet(vm, name, value, "not an IPv4 address");
      return value;
    case "ip6":
      if (!isIPv6(value)) failSet(vm, name, value, "not an IPv6 address");
      return normalizeIPv6(value);
    case "mac":
      if (!MAC.test(value.toLowerCase())) failSet(vm, name, value, "not a MAC address (xx:xx:xx:xx:xx:xx)");
      return value.toLowerCase();
    case "dispid": {
      if (!/^[1-9][0-9]{0,4}$/.test(value) || Number(value) > 65535)
        failSet(vm, name, value, "not a number 1..65535");
      const other = [...c.vms.values()].find(
        (o) => o.name !== vm.name && o.vmClass === "DispVM" && o.properties.get("dispid") === value,
      );
      if (other !== undefined) failSet(vm, name, value, `already used by "${other.name}"`);
      return value;
    }
    default:
      if (!RAW_NAME.test(name)) {
        throw new InvalidInputError(
          `Cannot set property "${name}" of "${vm.name}": a property name has lower-case letters, digits and "_"`,
        );
      }
      return value;
  }
}

/** Checks that a property may be reset to its default. */
export function checkPropertyReset(c: Collection, vm: VmRecord, name: string): void {
  const fail = (why: string): never => {
    throw new InvalidInputError(`Cannot reset property "${name}" of "${vm.name}": ${why}`);
  };
  if (READ_ONLY.has(name) || COMPUTED_NAMES.has(name)) fail("the property is read-only");
  if (name === "label") fail("a qube needs a label");
  // netvm needs no check: a default_netvm that would close a loop resolves
  // to "no netvm" (network.ts netvmOf), it never loops.
  if (name === "provides_network" && connectedVms(c, vm).length > 0) {
    fail(
      `the qube is still used by ${connectedVms(c, vm)
        .map((u) => u.name)
        .join(", ")}`,
    );
  }
}

/**
 * Every QubesDB key path of shared/spec/keys.md, with builders for the
 * per-address keys and zod schemas for the values. dom0 writes with these,
 * the agent reads with these, so both sides spell each key once.
 *
 * Everything read from QubesDB is untrusted: parse values with the schemas
 * (or `parseKeyValue`) before use; they normalise addresses to canonical text.
 */
import { z } from "zod";
import { InvalidInputError } from "./errors.js";
import { showText } from "./firewall/show.js";
import { isIPv4, isIPv6, normalizeIPv6, prefixFromNetmask } from "./net/ip.js";

/** QubesDB key paths are at most 63 characters of `A-Z a-z 0-9 _ / . : @ -` (spec/qubesdb.md). */
export const MAX_KEY_LENGTH = 63;
const KEY_CHARS = /^\/[A-Za-z0-9_/.:@-]*$/;

// In every networked VM's own database (written by dom0).
export const NAME_KEY = "/name";
export const TYPE_KEY = "/type";
export const QUBES_VM_TYPE_KEY = "/qubes-vm-type";
export const QUBES_MAC_KEY = "/qubes-mac";
export const QUBES_IP_KEY = "/qubes-ip";
export const QUBES_NETMASK_KEY = "/qubes-netmask";
export const QUBES_GATEWAY_KEY = "/qubes-gateway";
export const QUBES_PRIMARY_DNS_KEY = "/qubes-primary-dns";
export const QUBES_SECONDARY_DNS_KEY = "/qubes-secondary-dns";
export const QUBES_IP6_KEY = "/qubes-ip6";
export const QUBES_GATEWAY6_KEY = "/qubes-gateway6";

// In a network-providing VM's own database (written by dom0).
export const NETVM_NETWORK_KEY = "/qubes-netvm-network";
export const NETVM_GATEWAY_KEY = "/qubes-netvm-gateway";
export const NETVM_NETMASK_KEY = "/qubes-netvm-netmask";
export const NETVM_PRIMARY_DNS_KEY = "/qubes-netvm-primary-dns";
export const NETVM_SECONDARY_DNS_KEY = "/qubes-netvm-secondary-dns";
export const NETVM_GATEWAY6_KEY = "/qubes-netvm-gateway6";
export const CONNECTED_IPS_KEY = "/connected-ips";
export const CONNECTED_IPS6_KEY = "/connected-ips6";
export const MAPPED_IP_PREFIX = "/mapped-ip/";
export const FIREWALL_PREFIX = "/qubes-firewall/";

// Written by the ProxyVM agent.
export const FIREWALL_HANDLED_PREFIX = "/qubes-firewall-handled/";
export const FIREWALL_ERROR_PREFIX = "/qubes-firewall-error/";
export const DNS_PREFIX = "/dns/";

/** Fixed values dom0 publishes (spec/keys.md). */
export const DEFAULT_MAC = "00:16:3e:5e:6c:00";
export const VISIBLE_NETMASK_DEFAULT = "255.255.255.255";
export const PRIMARY_DNS = "10.139.1.1";
export const SECONDARY_DNS = "10.139.1.2";

export type MappedIpLeaf = "visible-ip" | "visible-gateway";
export const MAPPED_IP_LEAVES: readonly MappedIpLeaf[] = ["visible-ip", "visible-gateway"];

function checkKey(key: string): string {
  if (key.length > MAX_KEY_LENGTH || !KEY_CHARS.test(key)) {
    throw new InvalidInputError(
      `Cannot build QubesDB key "${key}": keys are at most ${MAX_KEY_LENGTH} characters of A-Z a-z 0-9 _ / . : @ -`,
    );
  }
  return key;
}

/** Keys are built from a VM's native address; anything else (a `/`, a name) would make a different key. */
function checkAddress(n: string): string {
  if (!isIPv4(n) && !isIPv6(n)) {
    throw new InvalidInputError(`Cannot build a QubesDB key for "${n}": not an IPv4 or IPv6 address`);
  }
  return n;
}

/** `/connected-ips` or `/connected-ips6`. */
export function connectedIpsKey(family: 4 | 6): string {
  return family === 4 ? CONNECTED_IPS_KEY : CONNECTED_IPS6_KEY;
}

/** `/mapped-ip/N/` — the subtree of one client's mapping. */
export function mappedIpPrefix(n: string): string {
  return checkKey(`${MAPPED_IP_PREFIX}${checkAddress(n)}/`);
}

/** `/mapped-ip/N/visible-ip` (default) or `/mapped-ip/N/visible-gateway`. */
export function mappedIpKey(n: string, leaf: MappedIpLeaf = "visible-ip"): string {
  return checkKey(`${MAPPED_IP_PREFIX}${checkAddress(n)}/${leaf}`);
}

/** `/qubes-firewall/N`: the commit signal, written last (empty value). */
export function firewallSignalKey(n: string): string {
  return checkKey(`${FIREWALL_PREFIX}${checkAddress(n)}`);
}

/** `/qubes-firewall/N/`: the rule keys (trailing slash: not the signal key). */
export function firewallRulesPrefix(n: string): string {
  return checkKey(`${FIREWALL_PREFIX}${checkAddress(n)}/`);
}

/** `/qubes-firewall/N/policy`. */
export function firewallPolicyKey(n: string): string {
  return checkKey(`${FIREWALL_PREFIX}${checkAddress(n)}/policy`);
}

/** `/qubes-firewall/N/NNNN` for the rule at `index` of the full list. */
export function firewallRuleKey(n: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 9999) {
    throw new InvalidInputError(`Cannot build a firewall rule key for index "${index}": it must be 0..9999`);
  }
  return checkKey(`${FIREWALL_PREFIX}${checkAddress(n)}/${String(index).padStart(4, "0")}`);
}

/** `/qubes-firewall-handled/N`: a counter bumped after every attempt to apply N's rules. */
export function firewallHandledKey(n: string): string {
  return checkKey(`${FIREWALL_HANDLED_PREFIX}${checkAddress(n)}`);
}

/** `/qubes-firewall-error/N`: empty after success, else the one-line reason. */
export function firewallErrorKey(n: string): string {
  return checkKey(`${FIREWALL_ERROR_PREFIX}${checkAddress(n)}`);
}

/** `/dns/N/HOST`, or undefined when that would exceed the key length limit (spec: then skipped). */
export function dnsKey(n: string, host: string): string | undefined {
  const key = `${DNS_PREFIX}${checkAddress(n)}/${host}`;
  if (key.length > MAX_KEY_LENGTH) return undefined;
  return checkKey(key);
}

/** The address N of a commit signal path `/qubes-firewall/N`, else undefined (rule keys, other keys). */
export function parseFirewallSignalKey(path: string): string | undefined {
  if (!path.startsWith(FIREWALL_PREFIX)) return undefined;
  const n = path.slice(FIREWALL_PREFIX.length);
  return n !== "" && !n.includes("/") ? n : undefined;
}

/** `{ n, leaf }` of `/mapped-ip/N/visible-ip` or `/mapped-ip/N/visible-gateway`, else undefined. */
export function parseMappedIpKey(path: string): { n: string; leaf: MappedIpLeaf } | undefined {
  if (!path.startsWith(MAPPED_IP_PREFIX)) return undefined;
  const [n = "", leaf, extra] = path.slice(MAPPED_IP_PREFIX.length).split("/");
  if (n === "" || extra !== undefined || (leaf !== "visible-ip" && leaf !== "visible-gateway"))
    return undefined;
  return { n, leaf };
}

// ---- value schemas ----

/** Dotted-quad IPv4 (exactly three dots, no leading zeros). */
export const ipv4Schema = z.string().refine(isIPv4, { message: "not an IPv4 address" });
/** Any IPv6 text, normalised to RFC 5952. */
export const ipv6Schema = z
  .string()
  .refine((text) => text.length <= 45 && isIPv6(text), { message: "not an IPv6 address" })
  .transform(normalizeIPv6);
/** A contiguous dotted netmask such as `255.255.255.0`. */
export const netmaskSchema = z.string().refine(
  (text) => {
    if (!isIPv4(text)) return false;
    try {
      prefixFromNetmask(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: "not a contiguous dotted netmask" },
);
/** `xx:xx:xx:xx:xx:xx`, normalised to lower case. */
export const macSchema = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { message: "not a MAC address xx:xx:xx:xx:xx:xx" })
  .transform((text) => text.toLowerCase());
/** `vifDOMID.IDX` as Xen's netback names it; at most 15 characters (Linux IFNAMSIZ - 1). */
export const vifNameSchema = z
  .string()
  .regex(/^vif(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,3})$/, { message: "not a vif name vifDOMID.IDX" })
  .refine((text) => text.length <= 15, { message: "longer than 15 characters" });
/** A Qubes VM name: a letter, then letters, digits, `_ . -`; at most 31 characters. */
export const vmNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,30}$/, { message: "not a VM name" });
export const vmTypeSchema = z.enum(["AppVM", "TemplateVM", "StandaloneVM", "DispVM", "AdminVM"]);
export const qubesVmTypeSchema = z.enum(["AppVM", "ProxyVM", "NetVM", "TemplateVM"]);
/** `/qubes-firewall-handled/N`: a decimal counter. */
export const handledCounterSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,14})$/, { message: "not a counter" })
  .transform(Number);
/** `/qubes-firewall-error/N`: one line of printable text, empty when the last attempt succeeded. */
export const firewallErrorSchema = z
  .string()
  .regex(/^[^\x00-\x1f\x7f]{0,1024}$/, { message: "not one line of text" });

function addressListSchema(family: 4 | 6) {
  const one = family === 4 ? ipv4Schema : ipv6Schema;
  return z
    .string()
    .max(3072)
    .transform((text, ctx) => {
      const seen = new Set<string>();
      for (const word of text.split(" ")) {
        if (word === "") continue;
        const parsed = one.safeParse(word);
        if (!parsed.success) {
          ctx.addIssue({ code: "custom", message: `"${showText(word)}" is not an IPv${family} address` });
          return z.NEVER;
        }
        seen.add(parsed.data);
      }
      return [...seen];
    });
}
/** `/connected-ips`: space-separated IPv4 addresses; empty string = none. Duplicates collapse. */
export const connectedIpsSchema = addressListSchema(4);
/** `/connected-ips6`: space-separated IPv6 addresses, normalised; empty string = none. */
export const connectedIps6Schema = addressListSchema(6);
/** `/dns/N/HOST`: space-separated `addr/len`. */
export const dnsValueSchema = z
  .string()
  .max(3072)
  .regex(/^[0-9a-fA-F:./ ]*$/, { message: "not a list of addr/len" });

/**
 * Parses a value read from QubesDB with a schema; the error names the key and
 * the value: `Cannot parse "/qubes-mac" value "zz": not a MAC address ...`.
 */
export function parseKeyValue<T>(schema: z.ZodType<T, string>, key: string, text: string): T {
  const result = schema.safeParse(text);
  if (result.success) return result.data;
  const shown = showText(text);
  const why = result.error.issues[0]?.message ?? "invalid";
  throw new InvalidInputError(`Cannot parse "${key}" value "${shown}": ${why}`);
}

/** The addresses in `/connected-ips` (4) or `/connected-ips6` (6), canonical, no duplicates. */
export function parseConnectedIps(text: string, family: 4 | 6): string[] {
  return parseKeyValue(
    family === 4 ? connectedIpsSchema : connectedIps6Schema,
    connectedIpsKey(family),
    text,
  );
}

/**
 * The addresses of `/connected-ips` (4) or `/connected-ips6` (6) and their
 * numbered continuations (`/connected-ips/1`, ...: dom0 splits a list longer
 * than one value, see dom0/emitter/plan.ts), from a multiread of the key.
 * Other keys in `entries` are ignored; parts are joined in numeric order.
 */
export function joinConnectedIps(entries: ReadonlyMap<string, string>, family: 4 | 6): string[] {
  const key = connectedIpsKey(family);
  const parts: Array<[number, string]> = [];
  for (const [path, text] of entries) {
    if (path === key) parts.push([0, text]);
    else if (path.startsWith(`${key}/`) && /^[1-9][0-9]{0,3}$/.test(path.slice(key.length + 1))) {
      parts.push([Number(path.slice(key.length + 1)), text]);
    }
  }
  parts.sort((a, b) => a[0] - b[0]);
  return [
    ...new Set(
      parts.flatMap(([index, text]) =>
        parseKeyValue(
          family === 4 ? connectedIpsSchema : connectedIps6Schema,
          index === 0 ? key : `${key}/${index}`,
          text,
        ),
      ),
    ),
  ];
}

/** Space-separated addresses for `/connected-ips*`; empty string when there are none. */
export function formatConnectedIps(addresses: readonly string[]): string {
  return addresses.join(" ");
}

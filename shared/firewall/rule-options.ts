/**
 * Turns the options of one rule (name/value pairs, already split by a text
 * form or read from firewall.xml) into a validated, canonical, frozen
 * `FirewallRule`. Every check of spec/firewall.md lives here, once, so the API
 * form, the QubesDB form and firewall.xml cannot drift apart.
 *
 * Errors are `InvalidInputError`s whose message is only the reason
 * (`option "dstports": port 99999 is out of range 0..65535`); the callers
 * prefix what they were parsing.
 */
import { InvalidInputError } from "../errors.js";
import { isIPv4, parseCidr4, parseCidr6 } from "../net/ip.js";
import type { FirewallAction, FirewallProto, FirewallRule, PortRange } from "./rule.js";
import { showText } from "./show.js";

/** Where the options come from: decides which option names are allowed. */
export type RuleSource = "api" | "qubesdb" | "xml";

const COMMON_OPTIONS = [
  "action",
  "proto",
  "dst4",
  "dst6",
  "dsthost",
  "dstports",
  "icmptype",
  "specialtarget",
];
/** QubesDB carries neither expire nor comment (spec/firewall.md, "QubesDB form"). */
const ALLOWED_OPTIONS: Record<RuleSource, ReadonlySet<string>> = {
  api: new Set([...COMMON_OPTIONS, "dstname", "expire", "comment"]),
  qubesdb: new Set(COMMON_OPTIONS),
  xml: new Set([...COMMON_OPTIONS, "dstname", "expire", "comment"]),
};

/** Every value other than a comment (spec/firewall.md). */
const VALUE_CHARS = /^[A-Za-z0-9:;,./\-_[\]]+$/;
/** A comment: letters and digits (any script), spaces and `:;,./-_[]`. No control characters. */
const COMMENT_CHARS = /^[\p{L}\p{N} :;,./\-_[\]]*$/u;
/** Bounds on untrusted text; a DNS name is at most 253 characters, so no real value comes near. */
export const MAX_VALUE_LENGTH = 255;
export const MAX_COMMENT_LENGTH = 512;
const DNS_NAME_CHARS = /^[a-z0-9._-]+$/;
/** A last label that a resolver might read as a number (inet_aton accepts "1.2.3" and "0x7f"). */
const NUMERIC_LABEL = /^([0-9]+|0x[0-9a-f]*)$/;

function fail(reason: string): never {
  throw new InvalidInputError(reason);
}

function parseAction(value: string): FirewallAction {
  if (value === "accept" || value === "drop") return value;
  return fail(`option "action": "${showText(value)}" is not accept or drop`);
}

function parseProto(value: string): FirewallProto {
  if (value === "tcp" || value === "udp" || value === "icmp") return value;
  return fail(`option "proto": "${showText(value)}" is not tcp, udp or icmp`);
}

function parsePrefixed(option: string, value: string, family: 4 | 6): string {
  const [address = "", prefix, extra] = value.split("/");
  const shown = showText(value);
  if (extra !== undefined) fail(`option "${option}": "${shown}" has more than one "/"`);
  const max = family === 4 ? 32 : 128;
  if (prefix !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefix))
      fail(`option "${option}": prefix length "${showText(prefix)}" is not a number`);
    if (Number(prefix) > max) fail(`option "${option}": prefix length ${prefix} is out of range 0..${max}`);
  }
  if (family === 4) {
    if (address.split(".").length !== 4) {
      fail(`option "${option}": "${showText(address)}" is not an IPv4 address (it needs exactly three dots)`);
    }
    if (!isIPv4(address)) fail(`option "${option}": "${showText(address)}" is not an IPv4 address`);
  }
  // Host bits are cleared, as nft does with `ip daddr 192.0.2.1/24`: the
  // reference dom0 accepts such values, so the agent must not fail on them.
  const withPrefix = `${address}/${prefix === undefined ? max : Number(prefix)}`;
  try {
    const cidr =
      family === 4
        ? parseCidr4(withPrefix, { allowHostBits: true })
        : parseCidr6(withPrefix, { allowHostBits: true });
    return `${cidr.address}/${cidr.prefix}`;
  } catch {
    return fail(`option "${option}": "${showText(address)}" is not an IPv${family} address`);
  }
}

/**
 * A `dsthost` (or its alias `dstname`): an address or network becomes dst4 /
 * dst6 (the reference does the same: the R4 fixture stores `dsthost` =
 * `192.168.0.0/24`), anything else must be a DNS name.
 */
function parseHost(option: string, value: string): Partial<Pick<FirewallRule, "dst4" | "dst6" | "dsthost">> {
  if (value.includes(":")) return { dst6: parsePrefixed(option, value, 6) };
  // Digits and dots only is meant as an IPv4 address: report what is wrong with it.
  if (value.includes("/") || /^[0-9.]+$/.test(value)) return { dst4: parsePrefixed(option, value, 4) };
  const name = value.toLowerCase();
  const shown = showText(value);
  if (!DNS_NAME_CHARS.test(name))
    fail(`option "${option}": "${shown}" is not a DNS name (allowed: a-z 0-9 . _ -)`);
  if (name.length > 253) fail(`option "${option}": "${shown}" is longer than 253 characters`);
  const labels = name.split(".");
  if (labels.some((label) => label.length === 0 || label.length > 63)) {
    fail(`option "${option}": "${shown}" is not a DNS name (every label needs 1..63 characters)`);
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? "")) {
    fail(`option "${option}": "${shown}" is neither an IP address nor a DNS name`);
  }
  return { dsthost: name };
}

function parsePort(text: string): number {
  const port = Number(text);
  if (port > 65535) fail(`option "dstports": port ${text} is out of range 0..65535`);
  return port;
}

/** `N` or `N-M`; the ends are compared as numbers, never as text (so `9-10` is a range). */
function parsePorts(value: string): PortRange {
  const match = /^([0-9]+)(?:-([0-9]+))?$/.exec(value);
  if (!match) return fail(`option "dstports": "${showText(value)}" is not a port or a port range N-M`);
  const from = parsePort(match[1] ?? "");
  const to = match[2] === undefined ? from : parsePort(match[2]);
  if (from > to) fail(`option "dstports": range ${value} starts after it ends`);
  return { from, to };
}

function parseIcmpType(value: string): number {
  if (!/^[0-9]+$/.test(value)) fail(`option "icmptype": "${showText(value)}" is not a number`);
  if (Number(value) > 255) fail(`option "icmptype": icmp type ${value} is out of range 0..255`);
  return Number(value);
}

function parseExpire(value: string): number {
  if (!/^[0-9]+$/.test(value)) fail(`option "expire": "${showText(value)}" is not a UNIX time (digits only)`);
  if (value.length > 15) fail(`option "expire": ${value} is too large for a UNIX time`);
  return Number(value);
}

function parseComment(value: string): string {
  if (value.length > MAX_COMMENT_LENGTH)
    fail(`option "comment": longer than ${MAX_COMMENT_LENGTH} characters`);
  if (!COMMENT_CHARS.test(value)) {
    fail(
      `option "comment": "${showText(value)}" has characters other than letters, digits, spaces and :;,./-_[]`,
    );
  }
  return value.trim();
}

/** Checks one name/value pair against the form and the value charset. */
function checkPair(name: string, value: string, source: RuleSource, seen: Set<string>): void {
  if (!ALLOWED_OPTIONS[source].has(name)) {
    const why = ALLOWED_OPTIONS.api.has(name) ? "not part of the QubesDB form" : "unknown option";
    fail(`option "${showText(name)}": ${why}`);
  }
  if (seen.has(name)) fail(`option "${name}": given more than once`);
  seen.add(name);
  if (name === "comment") return;
  if (value.length === 0) fail(`option "${name}": empty value`);
  if (value.length > MAX_VALUE_LENGTH)
    fail(`option "${name}": value longer than ${MAX_VALUE_LENGTH} characters`);
  if (value.includes("=")) fail(`option "${name}": value "${showText(value)}" has a second "="`);
  if (!VALUE_CHARS.test(value)) {
    fail(
      `option "${name}": value "${showText(value)}" has characters other than letters, digits and :;,./-_[]`,
    );
  }
}

/** Builds one rule from its options, in any order. */
export function buildRule(pairs: Iterable<readonly [string, string]>, source: RuleSource): FirewallRule {
  const seen = new Set<string>();
  const destinations: string[] = [];
  const rule: { -readonly [K in keyof FirewallRule]: FirewallRule[K] } = { action: "accept" };
  for (const [name, value] of pairs) {
    checkPair(name, value, source, seen);
    switch (name) {
      case "action":
        rule.action = parseAction(value);
        break;
      case "proto":
        rule.proto = parseProto(value);
        break;
      case "dst4":
      case "dst6":
      case "dsthost":
      case "dstname": {
        destinations.push(name);
        // dst4/dst6 must hold their own family; only dsthost/dstname may turn into an address.
        if (name === "dst4") rule.dst4 = parsePrefixed(name, value, 4);
        else if (name === "dst6") rule.dst6 = parsePrefixed(name, value, 6);
        else Object.assign(rule, parseHost(name, value));
        break;
      }
      case "dstports":
        rule.dstports = Object.freeze(parsePorts(value));
        break;
      case "icmptype":
        rule.icmptype = parseIcmpType(value);
        break;
      case "specialtarget":
        if (value !== "dns") fail(`option "specialtarget": "${showText(value)}" is not dns`);
        rule.specialtarget = "dns";
        break;
      case "expire":
        rule.expire = parseExpire(value);
        break;
      case "comment": {
        const comment = parseComment(value);
        if (comment !== "") rule.comment = comment;
        break;
      }
    }
  }
  if (!seen.has("action")) fail(`option "action": missing (every rule needs action=accept or action=drop)`);
  if (destinations.length > 1) {
    fail(`options "${destinations[0]}" and "${destinations[1]}": at most one destination per rule`);
  }
  if (rule.dstports !== undefined && rule.proto !== "tcp" && rule.proto !== "udp") {
    fail(`option "dstports": only valid with proto=tcp or proto=udp`);
  }
  if (rule.icmptype !== undefined && rule.proto !== "icmp")
    fail(`option "icmptype": only valid with proto=icmp`);
  return Object.freeze(rule);
}

/** The options of a rule as name/value text pairs in API order; `qubesdb` leaves out expire and comment. */
export function ruleToPairs(rule: FirewallRule, source: RuleSource): Array<[string, string]> {
  const pairs: Array<[string, string]> = [["action", rule.action]];
  if (rule.dst4 !== undefined) pairs.push(["dst4", rule.dst4]);
  if (rule.dst6 !== undefined) pairs.push(["dst6", rule.dst6]);
  if (rule.dsthost !== undefined) pairs.push(["dsthost", rule.dsthost]);
  if (rule.proto !== undefined) pairs.push(["proto", rule.proto]);
  if (rule.dstports !== undefined) pairs.push(["dstports", `${rule.dstports.from}-${rule.dstports.to}`]);
  if (rule.icmptype !== undefined) pairs.push(["icmptype", String(rule.icmptype)]);
  if (rule.specialtarget !== undefined) pairs.push(["specialtarget", rule.specialtarget]);
  if (source !== "qubesdb") {
    if (rule.expire !== undefined) pairs.push(["expire", String(rule.expire)]);
    if (rule.comment !== undefined) pairs.push(["comment", rule.comment]);
  }
  return pairs;
}

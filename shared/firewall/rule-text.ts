/**
 * The two text forms of a rule (spec/firewall.md, "Text forms"):
 * - API form, what `qvm-firewall` prints and takes: `action` first,
 *   `comment=` last and everything after it is the comment;
 * - QubesDB form, what dom0 publishes: the same without expire and comment.
 * Both parse into, and format from, the canonical `FirewallRule`.
 */
import { z } from "zod";
import { InvalidInputError } from "../errors.js";
import type { FirewallRule } from "./rule.js";
import { buildRule, type RuleSource, ruleToPairs } from "./rule-options.js";
import { showText } from "./show.js";

/** Longest rule string accepted (QubesDB values are at most 3072 bytes; a comment at most 512 characters). */
export const MAX_RULE_LENGTH = 2048;

/** `comment=` at the start of an option, not inside a value. */
const COMMENT_START = /(?:^| )comment=/;

function splitOptions(text: string): Array<[string, string]> {
  if (text === "") return [];
  return text.split(" ").map((token): [string, string] => {
    if (token === "") throw new InvalidInputError("empty option (options are separated by single spaces)");
    const equals = token.indexOf("=");
    if (equals < 0)
      throw new InvalidInputError(`option "${showText(token)}": no "=" (options are name=value)`);
    return [token.slice(0, equals), token.slice(equals + 1)];
  });
}

function parseRuleText(text: unknown, source: RuleSource): FirewallRule {
  if (typeof text !== "string")
    throw new InvalidInputError(`Cannot parse firewall rule "${String(text)}": not text`);
  const fail = (reason: string): never => {
    throw new InvalidInputError(`Cannot parse firewall rule "${showText(text)}": ${reason}`);
  };
  if (text.length > MAX_RULE_LENGTH) fail(`longer than ${MAX_RULE_LENGTH} characters`);
  try {
    if (source === "qubesdb") return buildRule(splitOptions(text), source);
    const match = COMMENT_START.exec(text);
    const options = match === null ? text : text.slice(0, match.index);
    const pairs = splitOptions(options.replace(/^ +| +$/g, ""));
    if (match !== null) pairs.push(["comment", text.slice(match.index + match[0].length)]);
    return buildRule(pairs, source);
  } catch (error) {
    if (error instanceof InvalidInputError) return fail(error.message);
    throw error;
  }
}

/** Parses the API form, e.g. `action=accept dsthost=example.com proto=tcp dstports=443 comment=web`. */
export function parseApiRule(text: string): FirewallRule {
  return parseRuleText(text, "api");
}

/** Parses the QubesDB form (untrusted: it is read from QubesDB by the agent). */
export function parseQubesDbRule(text: string): FirewallRule {
  return parseRuleText(text, "qubesdb");
}

const portRangeShape = z.strictObject({ from: z.number(), to: z.number() });
/** The shape only; values are checked by the same code that checks parsed text. */
const ruleShape = z.strictObject({
  action: z.string(),
  proto: z.string().optional(),
  dst4: z.string().optional(),
  dst6: z.string().optional(),
  dsthost: z.string().optional(),
  dstports: portRangeShape.optional(),
  icmptype: z.number().optional(),
  specialtarget: z.string().optional(),
  expire: z.number().optional(),
  comment: z.string().optional(),
});

/**
 * Checks a rule built by hand (or read from JSON) and returns it canonical and
 * frozen: `{ action: "accept", dst4: "192.0.2.1" }` comes back with `dst4` =
 * `192.0.2.1/32`, an address in `dsthost` comes back as dst4/dst6.
 */
export function validateRule(rule: unknown): FirewallRule {
  const shape = ruleShape.safeParse(rule);
  if (!shape.success) {
    const issue = shape.error.issues[0];
    const where = issue?.path.join(".") || "rule";
    throw new InvalidInputError(
      `Cannot validate firewall rule "${showText(JSON.stringify(rule) ?? String(rule))}": ${where}: ${issue?.message ?? "invalid"}`,
    );
  }
  const pairs: Array<[string, string]> = Object.entries(shape.data)
    .filter(
      (entry): entry is [string, string | number | { from: number; to: number }] => entry[1] !== undefined,
    )
    .map(([name, value]) => [name, typeof value === "object" ? `${value.from}-${value.to}` : String(value)]);
  try {
    return buildRule(pairs, "api");
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const text = pairs.map(([name, value]) => `${name}=${value}`).join(" ");
    throw new InvalidInputError(`Cannot validate firewall rule "${showText(text)}": ${error.message}`);
  }
}

function formatPairs(pairs: Array<[string, string]>): string {
  return pairs.map(([name, value]) => `${name}=${value}`).join(" ");
}

/** API form in the order of the spec example: action, destination, proto, dstports, ..., expire, comment last. */
export function formatApiRule(rule: FirewallRule): string {
  return formatPairs(ruleToPairs(validateRule(rule), "api"));
}

/** QubesDB form: the API form without expire and comment, dstports always `N-M`. */
export function formatQubesDbRule(rule: FirewallRule): string {
  return formatPairs(ruleToPairs(validateRule(rule), "qubesdb"));
}

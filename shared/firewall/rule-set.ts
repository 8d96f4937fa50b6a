/**
 * A VM's published rule set: the keys below `/qubes-firewall/N/` (spec/keys.md).
 * dom0 plans them with `planFirewallKeys`; the agent reads them back with
 * `parseQubesDbRuleSet` after it saw the commit signal `/qubes-firewall/N`.
 */
import { InvalidInputError } from "../errors.js";
import type { FirewallRule } from "./rule.js";
import { isRuleActive } from "./rule.js";
import { formatQubesDbRule, parseQubesDbRule } from "./rule-text.js";
import { showText } from "./show.js";

/** The only policy dom0 publishes: unmatched packets are dropped (spec/firewall.md). */
export const FIREWALL_POLICY = "drop";
/** Key name (below `/qubes-firewall/N/`) of the policy. */
export const POLICY_KEY_NAME = "policy";
/** Rule keys are four digits (`NNNN`), so a list holds at most 10000 rules. */
export const MAX_FIREWALL_RULES = 10000;
const RULE_KEY_NAME = /^[0-9]{4}$/;
/** Full keys as returned by a multiread of `/qubes-firewall/N/`. */
const FULL_KEY = /^\/qubes-firewall\/[^/]*\//;

/** `NNNN`: the rule's index into the full list, four digits. */
export function ruleKeyName(index: number): string {
  return String(index).padStart(4, "0");
}

/** Whether a rule belongs to the set published for the VM's IPv4 (4) or IPv6 (6) address. */
export function ruleFitsFamily(rule: FirewallRule, family: 4 | 6): boolean {
  return family === 4 ? rule.dst6 === undefined : rule.dst4 === undefined;
}

/**
 * The keys (names relative to `/qubes-firewall/N/`) and values dom0 publishes
 * for one address family: `policy` = `drop` and one `NNNN` per rule that is
 * active at `now` and fits the family. `NNNN` is the index into the full list,
 * so expired and other-family rules leave gaps.
 */
export function planFirewallKeys(
  rules: readonly FirewallRule[],
  family: 4 | 6,
  now: number,
): Map<string, string> {
  if (rules.length > MAX_FIREWALL_RULES) {
    throw new InvalidInputError(
      `Cannot publish ${rules.length} firewall rules: at most ${MAX_FIREWALL_RULES} fit in NNNN keys`,
    );
  }
  const keys = new Map<string, string>([[POLICY_KEY_NAME, FIREWALL_POLICY]]);
  rules.forEach((rule, index) => {
    if (isRuleActive(rule, now) && ruleFitsFamily(rule, family))
      keys.set(ruleKeyName(index), formatQubesDbRule(rule));
  });
  return keys;
}

/**
 * Validates a published rule set and returns its rules in index order.
 * Keys may be names relative to `/qubes-firewall/N/` or full paths. Throws an
 * `InvalidInputError` naming the key and rule for: a key that is neither four
 * digits nor `policy`, a missing or unsupported policy, an unparsable rule, a
 * rule of the other address family.
 */
export function parseQubesDbRuleSet(entries: ReadonlyMap<string, string>, family: 4 | 6): FirewallRule[] {
  const fail = (reason: string): never => {
    throw new InvalidInputError(`Cannot parse firewall rule set for IPv${family}: ${reason}`);
  };
  let policy: string | undefined;
  const indexed: Array<[string, FirewallRule]> = [];
  for (const [key, value] of entries) {
    const name = key.replace(FULL_KEY, "");
    if (name === POLICY_KEY_NAME) {
      policy = value;
      continue;
    }
    if (!RULE_KEY_NAME.test(name)) fail(`key "${showText(key)}" is neither four digits nor "policy"`);
    let rule: FirewallRule;
    try {
      rule = parseQubesDbRule(value);
    } catch (error) {
      return fail(`key "${name}": ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!ruleFitsFamily(rule, family)) {
      fail(
        `key "${name}" "${showText(value)}": a ${family === 4 ? "dst6" : "dst4"} rule in the IPv${family} set`,
      );
    }
    indexed.push([name, rule]);
  }
  if (policy === undefined) fail(`key "policy" is missing`);
  if (policy !== FIREWALL_POLICY) fail(`key "policy": "${showText(policy ?? "")}" is not drop`);
  indexed.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return indexed.map(([, rule]) => rule);
}

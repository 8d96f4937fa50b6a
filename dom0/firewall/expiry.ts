/**
 * Rule expiry (spec/firewall.md, "Expiry"). `now` is always a parameter, in
 * UNIX seconds, so callers decide the clock and tests need none.
 */
import { type FirewallRule, isRuleActive } from "../../shared/firewall/rule.js";

/** The rules still in force at `now`; a rule with `expire` <= now is gone. */
export function activeRules(rules: readonly FirewallRule[], now: number): FirewallRule[] {
  return rules.filter((rule) => isRuleActive(rule, now));
}

/** The earliest `expire` after `now`: when the VM's rules must be republished. Undefined if none. */
export function nextExpiry(rules: readonly FirewallRule[], now: number): number | undefined {
  let next: number | undefined;
  for (const rule of rules) {
    if (rule.expire !== undefined && rule.expire > now && (next === undefined || rule.expire < next))
      next = rule.expire;
  }
  return next;
}

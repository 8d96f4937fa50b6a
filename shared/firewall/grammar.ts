/**
 * The firewall rule grammar: the API and QubesDB text forms of one rule, and
 * the published QubesDB rule set. This module only gathers the pieces, each of
 * which lives in its own file.
 */

export {
  FIREWALL_POLICY,
  MAX_FIREWALL_RULES,
  POLICY_KEY_NAME,
  parseQubesDbRuleSet,
  planFirewallKeys,
  ruleFitsFamily,
  ruleKeyName,
} from "./rule-set.js";
export {
  formatApiRule,
  formatQubesDbRule,
  MAX_RULE_LENGTH,
  parseApiRule,
  parseQubesDbRule,
  validateRule,
} from "./rule-text.js";

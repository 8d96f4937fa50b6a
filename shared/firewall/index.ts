export * from "./grammar.js";
export * from "./rule.js";
export { MAX_COMMENT_LENGTH, MAX_VALUE_LENGTH } from "./rule-options.js";

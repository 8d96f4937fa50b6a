/**
 * Reads a Qubes R3 (version 1) firewall.xml and converts it to the rule list
 * R4 would make of it (spec/firewall.md, "Version 1"):
 *   1. a `specialtarget=dns` rule with the `dns` action,
 *   2. a `proto=icmp` rule with the `icmp` action,
 *   3. each `<rule>` child, with the action opposite to the policy,
 *   4. a final `action=accept` when the policy was `allow`.
 * `dns` and `icmp` default to the policy; `yumProxy` is ignored (R4 has no
 * such rule).
 */
import type { Element } from "@xmldom/xmldom";
import type { FirewallAction, FirewallRule } from "../../shared/firewall/rule.js";
import { buildRule } from "../../shared/firewall/rule-options.js";
import { showText } from "../../shared/firewall/show.js";
import { isIPv4, isIPv6, prefixFromNetmask } from "../../shared/net/ip.js";
import { childElements } from "./xml-dom.js";

/** The root element of a version 1 file. */
export const V1_ROOT = "QubesFirewallRules";
const V1_RULE_ATTRIBUTES = new Set(["address", "netmask", "proto", "port", "toport", "expire"]);

function v1Action(root: Element, attribute: string, fallback: string | undefined): FirewallAction {
  const value = root.getAttribute(attribute) ?? fallback;
  if (value === "allow") return "accept";
  if (value === "deny") return "drop";
  throw new Error(
    `attribute "${attribute}" of <${V1_ROOT}> is "${showText(value ?? "")}", not allow or deny`,
  );
}

/** The options of one R3 `<rule>` in R4 terms. */
function v1RulePairs(element: Element, action: FirewallAction): Array<[string, string]> {
  if (element.tagName !== "rule") throw new Error(`unexpected element <${element.tagName}>`);
  for (const attribute of Array.from(element.attributes)) {
    if (!V1_RULE_ATTRIBUTES.has(attribute.name)) throw new Error(`unknown attribute "${attribute.name}"`);
  }
  const pairs: Array<[string, string]> = [["action", action]];
  const address = element.getAttribute("address");
  if (address !== null && address !== "") {
    // netmask defaults to 32 (R3 had IPv4 only); an IPv6 address defaults to a
    // single host instead of R4's /32. A DNS name ignores the netmask.
    const netmask = element.getAttribute("netmask");
    if (isIPv4(address))
      pairs.push(["dsthost", `${address}/${netmask === null ? 32 : prefixFromNetmask(netmask)}`]);
    else if (isIPv6(address)) pairs.push(["dsthost", netmask === null ? address : `${address}/${netmask}`]);
    else pairs.push(["dsthost", address]);
  }
  const port = element.getAttribute("port");
  const toport = element.getAttribute("toport");
  if (toport !== null && port === null) throw new Error(`attribute "toport" without "port"`);
  let proto = element.getAttribute("proto");
  // R3 compatibility: a port without a protocol means TCP.
  if (port !== null && (proto === null || proto === "")) proto = "tcp";
  if (proto !== null && proto !== "any") pairs.push(["proto", proto]);
  if (port !== null) pairs.push(["dstports", toport === null ? port : `${port}-${toport}`]);
  const expire = element.getAttribute("expire");
  if (expire !== null) pairs.push(["expire", expire]);
  return pairs;
}

/**
 * Converts a version 1 root element. Errors are plain `Error`s naming the
 * rule number (1-based, in the file); the caller adds the file name.
 */
export function convertFirewallV1(root: Element): FirewallRule[] {
  const policy = v1Action(root, "policy", undefined);
  const rules: FirewallRule[] = [
    buildRule(
      [
        ["action", v1Action(root, "dns", root.getAttribute("policy") ?? undefined)],
        ["specialtarget", "dns"],
      ],
      "xml",
    ),
    buildRule(
      [
        ["action", v1Action(root, "icmp", root.getAttribute("policy") ?? undefined)],
        ["proto", "icmp"],
      ],
      "xml",
    ),
  ];
  const childAction: FirewallAction = policy === "accept" ? "drop" : "accept";
  childElements(root).forEach((element, index) => {
    try {
      rules.push(buildRule(v1RulePairs(element, childAction), "xml"));
    } catch (error) {
      throw new Error(`rule ${index + 1}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  if (policy === "accept") rules.push(buildRule([["action", "accept"]], "xml"));
  return rules;
}

/**
 * `DIR/appvms/NAME/firewall.xml`: reads version 2 (R4, this project) and
 * version 1 (R3, converted), always writes version 2, atomically.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Element } from "@xmldom/xmldom";
import { InvalidInputError, SystemError } from "../../shared/errors.js";
import { ALLOW_ALL_RULES, type FirewallRule } from "../../shared/firewall/rule.js";
import { buildRule, ruleToPairs } from "../../shared/firewall/rule-options.js";
import { MAX_FIREWALL_RULES } from "../../shared/firewall/rule-set.js";
import { validateRule } from "../../shared/firewall/rule-text.js";
import { activeRules } from "./expiry.js";
import { convertFirewallV1, V1_ROOT } from "./firewall-xml-v1.js";
import { childElements, elementText, escapeXml, parseXmlRoot } from "./xml-dom.js";

export const FIREWALL_FILE = "firewall.xml";
/** A firewall.xml is a few KiB; refuse anything that could not be one. */
export const MAX_FIREWALL_XML_BYTES = 4 * 1024 * 1024;
/** A VM name as Qubes allows it; checked so that it cannot climb out of `appvms/`. */
const VM_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;

/** `DIR/appvms/NAME/firewall.xml`. */
export function firewallXmlPath(dir: string, vmName: string): string {
  if (!VM_NAME.test(vmName))
    throw new InvalidInputError(`Cannot use VM name "${vmName}": not a Qubes VM name`);
  return join(dir, "appvms", vmName, FIREWALL_FILE);
}

/** The `<rule>` elements of version 2: `<rule><properties><property name="...">value</property>...`. */
function parseV2Rule(element: Element): FirewallRule {
  if (element.tagName !== "rule") throw new Error(`unexpected element <${element.tagName}>`);
  const pairs: Array<[string, string]> = [];
  for (const properties of childElements(element)) {
    if (properties.tagName !== "properties") throw new Error(`unexpected element <${properties.tagName}>`);
    for (const property of childElements(properties)) {
      const name = property.getAttribute("name");
      if (property.tagName !== "property" || name === null) {
        throw new Error(`unexpected element <${property.tagName}> (expected <property name="...">)`);
      }
      pairs.push([name, elementText(property)]);
    }
  }
  return buildRule(pairs, "xml");
}

function parseV2(root: Element): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (const section of childElements(root)) {
    if (section.tagName !== "rules") throw new Error(`unexpected element <${section.tagName}>`);
    for (const element of childElements(section)) {
      try {
        rules.push(parseV2Rule(element));
      } catch (error) {
        throw new Error(
          `rule ${rules.length + 1}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }
  return rules;
}

/** Parses firewall.xml text of version 2 or 1. `file` only names the file in errors. */
export function parseFirewallXml(text: string, file = FIREWALL_FILE): FirewallRule[] {
  try {
    const root = parseXmlRoot(text);
    let rules: FirewallRule[];
    if (root.tagName === "firewall" && root.getAttribute("version") === "2") rules = parseV2(root);
    else if (root.tagName === V1_ROOT) rules = convertFirewallV1(root);
    else throw new Error(`root element <${root.tagName}> is neither <firewall version="2"> nor <${V1_ROOT}>`);
    if (rules.length > MAX_FIREWALL_RULES) throw new Error(`more than ${MAX_FIREWALL_RULES} rules`);
    return rules;
  } catch (error) {
    throw new InvalidInputError(
      `Cannot read firewall rules "${file}": ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Version 2 text in the layout of the spec example (the layout R4 writes). */
export function formatFirewallXml(rules: readonly FirewallRule[]): string {
  const lines = ['<firewall version="2">', "  <rules>"];
  for (const rule of rules) {
    const valid = validateRule(rule);
    lines.push("    <rule>", "      <properties>");
    for (const [name, value] of ruleToPairs(valid, "api")) {
      // R4 stores every destination as `dsthost` and a single port without a range.
      const xmlName = name === "dst4" || name === "dst6" ? "dsthost" : name;
      const single = valid.dstports !== undefined && valid.dstports.from === valid.dstports.to;
      const xmlValue = name === "dstports" && single ? String(valid.dstports?.from) : value;
      lines.push(`        <property name="${xmlName}">${escapeXml(xmlValue)}</property>`);
    }
    lines.push("      </properties>", "    </rule>");
  }
  lines.push("  </rules>", "</firewall>", "");
  return lines.join("\n");
}

/** A VM's rules; a VM without firewall.xml allows everything (`[{ action: "accept" }]`). */
export async function loadFirewall(dir: string, vmName: string): Promise<FirewallRule[]> {
  const path = firewallXmlPath(dir, vmName);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [...ALLOW_ALL_RULES];
    throw new SystemError(`Cannot read firewall rules "${path}"`, { cause: error });
  }
  if (data.length > MAX_FIREWALL_XML_BYTES) {
    throw new InvalidInputError(
      `Cannot read firewall rules "${path}": larger than ${MAX_FIREWALL_XML_BYTES} bytes`,
    );
  }
  return parseFirewallXml(data.toString("utf8"), path);
}

/**
 * Writes a VM's rules as version 2, leaving out rules expired at `now`.
 * Atomic: 1. write a temporary file in the same directory, 2. fsync it,
 * 3. rename it over firewall.xml, 4. fsync the directory so the rename is
 * durable. A reader sees the old file or the new one, never a mix.
 */
export async function saveFirewall(
  dir: string,
  vmName: string,
  rules: readonly FirewallRule[],
  now: number,
): Promise<void> {
  const path = firewallXmlPath(dir, vmName);
  const text = formatFirewallXml(activeRules(rules, now));
  const folder = join(dir, "appvms", vmName);
  const temporary = join(folder, `.${FIREWALL_FILE}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await mkdir(folder, { recursive: true });
    const handle = await open(temporary, "wx", 0o644);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
    const folderHandle = await open(folder, "r");
    try {
      await folderHandle.sync();
    } finally {
      await folderHandle.close();
    }
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new SystemError(`Cannot save firewall rules "${path}"`, { cause: error });
  }
}

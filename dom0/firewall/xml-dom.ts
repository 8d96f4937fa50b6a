/**
 * The few DOM helpers firewall.xml needs, on top of @xmldom/xmldom. Parsing
 * is strict: any XML error (not only a fatal one) rejects the file, because a
 * firewall read "mostly" is worse than one not read at all.
 */
import { DOMParser, type Element, type Node } from "@xmldom/xmldom";
import { showText } from "../../shared/firewall/show.js";

/** DOM node types (https://dom.spec.whatwg.org/#dom-node-nodetype). */
const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;
const COMMENT_NODE = 8;
const PROCESSING_INSTRUCTION_NODE = 7;

/** Parses XML text and returns the root element; throws the parser's first complaint on any error. */
export function parseXmlRoot(text: string): Element {
  let complaint: string | undefined;
  const parser = new DOMParser({
    onError: (level, message) => {
      if (level === "warning") return;
      complaint ??= message.split("\n")[0];
      throw new Error(message);
    },
  });
  let root: Element | null;
  try {
    root = parser.parseFromString(text, "text/xml").documentElement;
  } catch (error) {
    throw new Error(
      `not well-formed XML: ${complaint ?? (error instanceof Error ? error.message : String(error))}`,
    );
  }
  if (!root) throw new Error("not well-formed XML: no root element");
  return root;
}

/** The child elements of `parent`; throws on text other than white space between them. */
export function childElements(parent: Element): Element[] {
  const elements: Element[] = [];
  for (let node: Node | null = parent.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === ELEMENT_NODE) elements.push(node as Element);
    else if (node.nodeType === TEXT_NODE || node.nodeType === CDATA_SECTION_NODE) {
      if ((node.nodeValue ?? "").trim() !== "") {
        throw new Error(
          `unexpected text "${showText((node.nodeValue ?? "").trim().slice(0, 40))}" in <${parent.tagName}>`,
        );
      }
    } else if (node.nodeType !== COMMENT_NODE && node.nodeType !== PROCESSING_INSTRUCTION_NODE) {
      throw new Error(`unexpected content in <${parent.tagName}>`);
    }
  }
  return elements;
}

/** The text content of an element that must hold only text. */
export function elementText(element: Element): string {
  let text = "";
  for (let node: Node | null = element.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === TEXT_NODE || node.nodeType === CDATA_SECTION_NODE) text += node.nodeValue ?? "";
    else if (node.nodeType !== COMMENT_NODE) throw new Error(`<${element.tagName}> must hold only text`);
  }
  return text;
}

/** Escapes text for an XML element or attribute value. */
export function escapeXml(text: string): string {
  const entities: Record<string, string> = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&apos;",
  };
  return text.replace(/[&<>"']/g, (c) => entities[c] ?? c);
}

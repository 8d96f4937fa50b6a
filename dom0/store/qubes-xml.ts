/**
 * Lossless load and save of a Qubes R4 `qubes.xml`.
 *
 * The parsed DOM *is* the store: every read and write of the model goes
 * through it, so properties, features, elements and attributes this project
 * does not model (pools, volume-config, devices, tags, ...) survive a
 * load/save round trip untouched. Only whitespace inside tags is normalised
 * by the serializer, which does not change the document's meaning.
 */
import { DOMParser, type Document, type Element, XMLSerializer } from "@xmldom/xmldom";
import { InvalidInputError } from "../../shared/errors.js";

/** Qubes' standard labels (qubes/app.py `Qubes.setup_pools`/`labels`), used for a fresh store. */
const DEFAULT_LABELS: ReadonlyArray<readonly [number, string, string]> = [
  [1, "red", "0xcc0000"],
  [2, "orange", "0xf57900"],
  [3, "yellow", "0xedd400"],
  [4, "green", "0x73d216"],
  [5, "gray", "0x555753"],
  [6, "blue", "0x3465a4"],
  [7, "purple", "0x75507b"],
  [8, "black", "0x000000"],
];

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

/** Parses qubes.xml text; `source` names the file in errors. */
export function parseQubesXml(text: string, source: string): Document {
  let doc: Document;
  try {
    doc = new DOMParser({
      onError: (level, message) => {
        if (level !== "warning") throw new Error(message);
      },
    }).parseFromString(text, "text/xml");
  } catch (error) {
    throw new InvalidInputError(`Cannot parse "${source}": not well-formed XML`, { cause: error });
  }
  const root = doc.documentElement;
  if (root === null || root.tagName !== "qubes") {
    throw new InvalidInputError(`Cannot parse "${source}": the root element is not <qubes>`);
  }
  if (firstChild(root, "domains") === undefined) {
    throw new InvalidInputError(`Cannot parse "${source}": no <domains> element`);
  }
  return doc;
}

export function serializeQubesXml(doc: Document): string {
  const text = new XMLSerializer().serializeToString(doc);
  return text.endsWith("\n") ? text : `${text}\n`;
}

/** A fresh collection: the standard labels, no global properties and the AdminVM dom0 (qid 0). */
export function createQubesXml(): Document {
  const labels = DEFAULT_LABELS.map(
    ([id, name, color]) => `    <label color="${color}" id="label-${id}">${name}</label>`,
  ).join("\n");
  const text = `<?xml version="1.0" encoding="UTF-8"?>
<qubes>
  <labels>
${labels}
  </labels>
  <pools/>
  <properties/>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties>
        <property name="label">label-8</property>
      </properties>
      <features/>
      <tags/>
    </domain>
  </domains>
</qubes>
`;
  return parseQubesXml(text, "(new qubes.xml)");
}

/** Element children of `parent`, optionally only those named `tag`. */
/** The document an element belongs to (always set for elements of a parsed document). */
function documentOf(el: Element): Document {
  const doc = el.ownerDocument;
  if (doc === null) throw new Error("element has no owner document");
  return doc;
}

export function childElements(parent: Element, tag?: string): Element[] {
  const out: Element[] = [];
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === ELEMENT_NODE && (tag === undefined || (node as Element).tagName === tag)) {
      out.push(node as Element);
    }
  }
  return out;
}

export function firstChild(parent: Element, tag: string): Element | undefined {
  return childElements(parent, tag)[0];
}

/** The indentation (whitespace after the last newline) of the text node before `node`, or "". */
function indentBefore(node: Element): string {
  const prev = node.previousSibling;
  if (prev === null || prev.nodeType !== TEXT_NODE) return "";
  const text = prev.nodeValue ?? "";
  const at = text.lastIndexOf("\n");
  return at < 0 ? "" : text.slice(at + 1);
}

/**
 * Appends `child` as the last element of `parent`, indented like its siblings
 * (or one level deeper than `parent` when it has none), so saved files stay
 * readable for people who diff them.
 */
export function appendIndented(parent: Element, child: Element): void {
  const doc = documentOf(parent);
  const siblings = childElements(parent);
  const last = siblings[siblings.length - 1];
  if (last !== undefined) {
    const gap = doc.createTextNode(`\n${indentBefore(last)}`);
    parent.insertBefore(gap, last.nextSibling);
    parent.insertBefore(child, gap.nextSibling);
    return;
  }
  const outer = indentBefore(parent);
  while (parent.firstChild !== null) parent.removeChild(parent.firstChild);
  parent.appendChild(doc.createTextNode(`\n${outer}  `));
  parent.appendChild(child);
  parent.appendChild(doc.createTextNode(`\n${outer}`));
}

/** Removes `child` together with the whitespace that indented it. */
export function removeIndented(child: Element): void {
  const parent = child.parentNode;
  if (parent === null) return;
  const prev = child.previousSibling;
  if (prev !== null && prev.nodeType === TEXT_NODE && /^\s*$/.test(prev.nodeValue ?? "")) {
    parent.removeChild(prev);
  }
  parent.removeChild(child);
}

/** Returns the child named `tag`, creating it (indented) when missing. */
export function ensureChild(parent: Element, tag: string): Element {
  const found = firstChild(parent, tag);
  if (found !== undefined) return found;
  const created = documentOf(parent).createElement(tag);
  appendIndented(parent, created);
  return created;
}

/** `name` → text of every `<tag name="...">` child of `container` (properties, features). */
export function readNamedValues(container: Element | undefined, tag: string): Map<string, string> {
  const values = new Map<string, string>();
  if (container === undefined) return values;
  for (const el of childElements(container, tag)) {
    const name = el.getAttribute("name");
    if (name !== null) values.set(name, el.textContent ?? "");
  }
  return values;
}

/** Sets (or, with `undefined`, removes) `<tag name="name">value</tag>` in `container`. */
export function writeNamedValue(
  container: Element,
  tag: string,
  name: string,
  value: string | undefined,
): void {
  const existing = childElements(container, tag).find((el) => el.getAttribute("name") === name);
  if (value === undefined) {
    if (existing !== undefined) removeIndented(existing);
    return;
  }
  if (existing !== undefined) {
    existing.textContent = value;
    return;
  }
  const created = documentOf(container).createElement(tag);
  created.setAttribute("name", name);
  if (value !== "") created.textContent = value;
  appendIndented(container, created);
}

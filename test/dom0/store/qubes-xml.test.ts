import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DOMParser, type Document, type Element } from "@xmldom/xmldom";
import t from "tap";
import { readCollection } from "../../../dom0/model/collection.js";
import { setFeature, setProperty } from "../../../dom0/model/edit.js";
import { createQubesXml, parseQubesXml, serializeQubesXml } from "../../../dom0/store/qubes-xml.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/qubes-r4");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

/** A canonical form of the DOM: elements with sorted attributes and non-whitespace text, comments kept. */
function canonical(doc: Document): string {
  const walk = (node: Element, depth: number): string => {
    const attrs = [...Array.from(node.attributes)]
      .map((a) => `${a.name}=${JSON.stringify(a.value)}`)
      .sort()
      .join(" ");
    const lines = [`${"  ".repeat(depth)}<${node.tagName} ${attrs}>`];
    for (let child = node.firstChild; child !== null; child = child.nextSibling) {
      if (child.nodeType === 1) lines.push(walk(child as Element, depth + 1));
      else if (child.nodeType === 3 && (child.nodeValue ?? "").trim() !== "")
        lines.push(`${"  ".repeat(depth + 1)}text ${JSON.stringify(child.nodeValue)}`);
      else if (child.nodeType === 8)
        lines.push(`${"  ".repeat(depth + 1)}comment ${JSON.stringify(child.nodeValue)}`);
    }
    return lines.join("\n");
  };
  return walk(doc.documentElement!, 0);
}

const reparse = (text: string) => new DOMParser().parseFromString(text, "text/xml");

for (const name of ["v4-qubes.xml", "whonix-qubes.xml"]) {
  t.test(`a load/save round trip of ${name} keeps every element, attribute and text`, async (t) => {
    const text = fixture(name);
    const saved = serializeQubesXml(parseQubesXml(text, name));
    t.equal(canonical(reparse(saved)), canonical(reparse(text)));
    // Saving twice gives the same bytes (nothing drifts from save to save).
    t.equal(serializeQubesXml(parseQubesXml(saved, name)), saved);
  });
}

t.test("changing one property of the R4 fixture changes only that property", async (t) => {
  const text = fixture("v4-qubes.xml");
  const doc = parseQubesXml(text, "v4-qubes.xml");
  setProperty(doc, "personal", "netvm", "sys-net");
  setFeature(doc, "personal", "net/fake-ip", "192.0.2.7");
  const blocks = (d: Document) => canonical(d).split("\n    <domain ");
  const before = blocks(reparse(text));
  const after = blocks(reparse(serializeQubesXml(doc)));
  t.equal(after.length, before.length);
  const changed = after
    .map((block, i) => (block === before[i] ? undefined : i))
    .filter((i) => i !== undefined);
  t.equal(changed.length, 1, "only one domain differs");
  const block = after[changed[0]!]!;
  t.match(block, /<property name="name">\n\s+text "personal"/);
  t.equal(
    block
      .replace('text "sys-net"', 'text "sys-firewall"')
      .replace(/\n\s+<feature name="net.fake-ip">\n\s+text "192.0.2.7"/, ""),
    before[changed[0]!],
    "the domain differs only by the new netvm and the new feature",
  );
  const vm = readCollection(doc).vms.get("personal")!;
  t.equal(vm.properties.get("netvm"), "sys-net");
  t.equal(vm.features.get("net.fake-ip"), "192.0.2.7");
});

t.test("a new property is indented like its siblings", async (t) => {
  const doc = parseQubesXml(fixture("whonix-qubes.xml"), "whonix-qubes.xml");
  setProperty(doc, "work", "mac", "00:16:3E:00:00:01");
  t.match(
    serializeQubesXml(doc),
    /<property name="memory">800<\/property>\n {8}<property name="mac">00:16:3e:00:00:01<\/property>\n {6}<\/properties>/,
  );
});

t.test("a fresh store has the standard labels and dom0 with qid 0", async (t) => {
  const c = readCollection(createQubesXml());
  t.same([...c.labels.values()], ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"]);
  t.same(
    [...c.vms.values()].map((vm) => [vm.name, vm.qid, vm.vmClass]),
    [["dom0", 0, "AdminVM"]],
  );
  t.same([...c.globals], []);
});

t.test("documents that are not a qubes.xml are refused with the file named", async (t) => {
  const cases: Array<[string, string]> = [
    ["<qubes><domains>", 'Cannot parse "x.xml": not well-formed XML'],
    ["<firewall/>", 'Cannot parse "x.xml": the root element is not <qubes>'],
    ["<qubes><labels/></qubes>", 'Cannot parse "x.xml": no <domains> element'],
  ];
  for (const [text, message] of cases) t.throws(() => parseQubesXml(text, "x.xml"), { message }, text);
});

t.test("snapshots refuse duplicate names and domains without a name", async (t) => {
  const wrap = (domains: string) => parseQubesXml(`<qubes><domains>${domains}</domains></qubes>`, "x");
  const vm = (name: string, qid: number) =>
    `<domain class="AppVM"><properties><property name="name">${name}</property><property name="qid">${qid}</property></properties></domain>`;
  t.throws(() => readCollection(wrap(vm("a", 1) + vm("a", 2))), {
    message: 'Cannot load domain "a": the name is used twice',
  });
  t.equal(
    readCollection(wrap(vm("a", 1) + vm("b", 1))).vms.size,
    2,
    "a qid used twice is read (R4 test data has one)",
  );
  t.throws(() => readCollection(wrap('<domain id="domain-9" class="AppVM"><properties/></domain>')), {
    message: 'Cannot load domain "domain-9": it has no name property',
  });
});

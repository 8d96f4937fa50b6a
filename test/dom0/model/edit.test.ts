import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { readCollection } from "../../../dom0/model/collection.js";
import { createVm, removeVm, resetProperty, setProperty } from "../../../dom0/model/edit.js";
import { getProperty, listProperties } from "../../../dom0/model/properties.js";
import { parseQubesXml, serializeQubesXml } from "../../../dom0/store/qubes-xml.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/qubes-r4");
const loadDoc = () =>
  parseQubesXml(readFileSync(join(FIXTURES, "whonix-qubes.xml"), "utf8"), "whonix-qubes.xml");
const UUID = "00000000-0000-4000-8000-000000000001";

t.test("qvm-create gives the lowest free qid, stores the label by id and checks the template", async (t) => {
  const doc = loadDoc();
  const vm = createVm(doc, {
    name: "anon-3",
    vmClass: "AppVM",
    label: "purple",
    template: "whonix-ws-17",
    uuid: UUID,
  });
  t.same(
    [vm.qid, vm.vmClass, [...vm.properties]],
    [
      12,
      "AppVM",
      [
        ["qid", "12"],
        ["name", "anon-3"],
        ["uuid", UUID],
        ["label", "label-7"],
        ["template", "whonix-ws-17"],
      ],
    ],
  );
  const d = createVm(doc, { name: "disp1", vmClass: "DispVM", label: "red", uuid: UUID });
  t.same(
    [d.properties.get("template"), d.properties.get("dispid")],
    ["whonix-ws-17-dvm", "1"],
    "default_dispvm, lowest dispid",
  );
  const p = createVm(doc, {
    name: "sys-vpn",
    vmClass: "AppVM",
    label: "blue",
    uuid: UUID,
    properties: [
      ["provides_network", "yes"],
      ["netvm", "sys-firewall"],
    ],
  });
  t.same(
    [p.properties.get("template"), p.properties.get("provides_network"), p.properties.get("netvm")],
    ["debian-12", "True", "sys-firewall"],
  );
});

t.test("qvm-create refuses bad requests and leaves the document unchanged", async (t) => {
  const doc = loadDoc();
  const before = serializeQubesXml(doc);
  const cases: Array<[Parameters<typeof createVm>[1], string]> = [
    [
      { name: "work", vmClass: "AppVM", label: "red", uuid: UUID },
      'Cannot create "work": a qube with this name exists',
    ],
    [
      { name: "1abc", vmClass: "AppVM", label: "red", uuid: UUID },
      'Cannot use "1abc" as a qube name: it needs 1..31 letters, digits, _ . - and must start with a letter',
    ],
    [
      { name: "none", vmClass: "AppVM", label: "red", uuid: UUID },
      'Cannot use "none" as a qube name: "none" and "default" are reserved',
    ],
    [
      { name: "x-dm", vmClass: "AppVM", label: "red", uuid: UUID },
      'Cannot use "x-dm" as a qube name: names ending in "-dm" are reserved for device-model stubdomains',
    ],
    [
      { name: "x", vmClass: "HVM", label: "red", uuid: UUID },
      'Cannot create "x" of class "HVM": use AppVM, TemplateVM, StandaloneVM or DispVM',
    ],
    [
      { name: "x", vmClass: "AppVM", label: "pink", uuid: UUID },
      'Cannot set property "label" of "x" to "pink": no such label (known: red, orange, yellow, green, gray, blue, purple, black)',
    ],
    [
      { name: "x", vmClass: "AppVM", label: "red", template: "work", uuid: UUID },
      'Cannot set property "template" of "x" to "work": not a TemplateVM',
    ],
    [
      { name: "x", vmClass: "AppVM", label: "red", template: "nope", uuid: UUID },
      'Cannot set property "template" of "x" to "nope": no such qube',
    ],
    [
      { name: "x", vmClass: "DispVM", label: "red", template: "whonix-ws-17", uuid: UUID },
      'Cannot set property "template" of "x" to "whonix-ws-17": not a disposable template (an AppVM with template_for_dispvms True)',
    ],
    [
      { name: "x", vmClass: "TemplateVM", label: "red", template: "debian-12", uuid: UUID },
      'Cannot create "x": a TemplateVM has no template',
    ],
    [
      { name: "x", vmClass: "AppVM", label: "red", uuid: UUID, properties: [["netvm", "work"]] },
      'Cannot set property "netvm" of "x" to "work": the qube "work" does not provide network',
    ],
    [
      { name: "x", vmClass: "AppVM", label: "red", uuid: UUID, properties: [["qid", "99"]] },
      'Cannot set property "qid" of "x" to "99": the property is read-only',
    ],
    [
      { name: "x", vmClass: "DispVM", label: "red", uuid: UUID, properties: [["dispid", "1234"]] },
      'Cannot set property "dispid" of "x" to "1234": already used by "disp1234"',
    ],
  ];
  for (const [request, message] of cases) t.throws(() => createVm(doc, request), { message }, request.name);
  t.equal(serializeQubesXml(doc), before);
});

t.test("qvm-prefs validates every modeled property and names qube, property and value", async (t) => {
  const doc = loadDoc();
  const before = serializeQubesXml(doc);
  const cases: Array<[string, string, string, string]> = [
    [
      "sys-net",
      "netvm",
      "anon-whonix",
      'Cannot set property "netvm" of "sys-net" to "anon-whonix": the qube "anon-whonix" does not provide network',
    ],
    [
      "sys-net",
      "netvm",
      "sys-whonix",
      'Cannot set property "netvm" of "sys-net" to "sys-whonix": loops in network are unsupported',
    ],
    [
      "sys-firewall",
      "netvm",
      "sys-firewall",
      'Cannot set property "netvm" of "sys-firewall" to "sys-firewall": loops in network are unsupported',
    ],
    ["work", "netvm", "nope", 'Cannot set property "netvm" of "work" to "nope": no such qube'],
    ["dom0", "netvm", "sys-net", 'Cannot set property "netvm" of "dom0" to "sys-net": dom0 has no netvm'],
    [
      "sys-whonix",
      "provides_network",
      "False",
      'Cannot set property "provides_network" of "sys-whonix" to "False": the qube is still used by anon-whonix, anon-2, whonix-ws-17-dvm, disp1234; change their netvm first',
    ],
    [
      "work",
      "provides_network",
      "maybe",
      'Cannot set property "provides_network" of "work" to "maybe": not a boolean (True or False)',
    ],
    ["work", "ip", "10.137.0", 'Cannot set property "ip" of "work" to "10.137.0": not an IPv4 address'],
    ["work", "ip6", "fd09::g", 'Cannot set property "ip6" of "work" to "fd09::g": not an IPv6 address'],
    [
      "work",
      "mac",
      "00:16:3e",
      'Cannot set property "mac" of "work" to "00:16:3e": not a MAC address (xx:xx:xx:xx:xx:xx)',
    ],
    ["work", "qid", "3", 'Cannot set property "qid" of "work" to "3": the property is read-only'],
    [
      "work",
      "visible_ip",
      "10.0.0.1",
      'Cannot set property "visible_ip" of "work" to "10.0.0.1": the property is read-only',
    ],
    [
      "debian-12",
      "template",
      "debian-12",
      'Cannot set property "template" of "debian-12" to "debian-12": a TemplateVM has no template',
    ],
    [
      "work",
      "Bad-Name",
      "1",
      'Cannot set property "Bad-Name" of "work": a property name has lower-case letters, digits and "_"',
    ],
    ["nope", "netvm", "", 'Cannot find qube "nope": no such qube'],
  ];
  for (const [vm, name, value, message] of cases)
    t.throws(() => setProperty(doc, vm, name, value), { message }, `${vm} ${name}`);
  t.equal(serializeQubesXml(doc), before, "nothing was changed by the refused values");
});

t.test("qvm-prefs stores normalised values and resets to defaults", async (t) => {
  const doc = loadDoc();
  const cases: Array<[string, string, string, string]> = [
    ["work", "netvm", "none", ""],
    ["work", "netvm", "", ""],
    ["work", "netvm", "sys-whonix", "sys-whonix"],
    ["work", "provides_network", "on", "True"],
    ["work", "mac", "00:16:3E:AA:BB:CC", "00:16:3e:aa:bb:cc"],
    ["work", "ip6", "FD00:0::1", "fd00::1"],
    ["work", "label", "green", "label-4"],
    ["work", "memory", "400", "400"],
  ];
  for (const [vm, name, value, stored] of cases)
    t.equal(setProperty(doc, vm, name, value), stored, `${name}=${value}`);
  const c = readCollection(doc);
  t.same(getProperty(c, c.vms.get("work")!, "label"), { name: "label", value: "green", isDefault: false });
  resetProperty(doc, "work", "netvm");
  const after = readCollection(doc);
  t.same(getProperty(after, after.vms.get("work")!, "netvm"), {
    name: "netvm",
    value: "sys-firewall",
    isDefault: true,
  });
  t.throws(() => resetProperty(doc, "work", "label"), {
    message: 'Cannot reset property "label" of "work": a qube needs a label',
  });
  t.throws(() => resetProperty(doc, "sys-whonix", "provides_network"), {
    message:
      'Cannot reset property "provides_network" of "sys-whonix": the qube is still used by anon-whonix, anon-2, whonix-ws-17-dvm, disp1234',
  });
});

t.test("qvm-prefs lists modeled, computed and stored properties with their default marks", async (t) => {
  const c = readCollection(loadDoc());
  const rows = listProperties(c, c.vms.get("anon-whonix")!).map(
    (p) => `${p.name} ${p.isDefault ? "D" : "-"} ${p.value}`,
  );
  t.same(rows, [
    "gateway D ",
    "gateway6 D ",
    "ip D 10.137.0.7",
    "ip6 D ",
    "klass - AppVM",
    "label - orange",
    "mac D 00:16:3e:5e:6c:00",
    "name - anon-whonix",
    "netmask D 255.255.255.255",
    "netvm - sys-whonix",
    "provides_network D False",
    "qid - 7",
    "template - whonix-ws-17",
    "uuid - 7d3c2f2e-2f3b-4c1e-9a59-0b9d3b1c0a07",
    "visible_gateway D 10.152.152.10",
    "visible_gateway6 D ",
    "visible_ip D 10.152.152.11",
    "visible_ip6 D ",
    "visible_netmask D 255.255.192.0",
  ]);
  t.throws(() => getProperty(c, c.vms.get("work")!, "kernel"), {
    message: 'Cannot read property "kernel" of "work": no such property',
  });
});

t.test("qvm-remove refuses qubes still in use and removes the rest", async (t) => {
  const doc = loadDoc();
  const cases: Array<[string, string]> = [
    [
      "sys-whonix",
      'Cannot remove "sys-whonix": it is still used by anon-whonix (netvm), anon-2 (netvm), whonix-ws-17-dvm (netvm), disp1234 (netvm)',
    ],
    [
      "debian-12",
      'Cannot remove "debian-12": it is still used by sys-net (template), sys-firewall (template), work (template), global default_template',
    ],
    [
      "sys-firewall",
      'Cannot remove "sys-firewall": it is still used by sys-whonix (netvm), global default_netvm, global updatevm',
    ],
    ["dom0", 'Cannot remove "dom0": it is the AdminVM'],
    ["nope", 'Cannot find qube "nope": no such qube'],
  ];
  for (const [name, message] of cases) t.throws(() => removeVm(doc, name), { message }, name);
  removeVm(doc, "work");
  removeVm(doc, "disp1234");
  t.same([...readCollection(doc).vms.keys()].includes("work"), false);
  t.notMatch(serializeQubesXml(doc), /disp1234|name">work</);
});

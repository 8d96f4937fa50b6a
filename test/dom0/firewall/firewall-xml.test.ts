import { mkdir, open, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import {
  firewallXmlPath,
  formatFirewallXml,
  loadFirewall,
  parseFirewallXml,
  saveFirewall,
} from "../../../dom0/firewall/index.js";
import { InvalidInputError, SystemError } from "../../../shared/errors.js";
import type { FirewallRule } from "../../../shared/firewall/index.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "qubes-r4");
const readFixture = (name: string) => readFile(join(fixtures, name), "utf8");

const v4Rules: FirewallRule[] = [
  { action: "accept", specialtarget: "dns" },
  { action: "accept", proto: "icmp" },
  { action: "accept", proto: "tcp", dstports: { from: 22, to: 22 } },
  { action: "accept", dsthost: "www.qubes-os.org", proto: "tcp", dstports: { from: 443, to: 443 } },
  { action: "accept", dst4: "192.168.0.0/24", proto: "tcp" },
  { action: "drop" },
];

t.test("the R4 (version 2) fixture reads as its six rules, the address in dsthost as dst4", async (t) => {
  t.same(parseFirewallXml(await readFixture("v4-firewall.xml")), v4Rules);
});

t.test("formatting the R4 fixture's rules gives back the fixture byte for byte", async (t) => {
  t.equal(formatFirewallXml(v4Rules), await readFixture("v4-firewall.xml"));
});

t.test("the R3 (version 1) fixture converts as R4 converts it", async (t) => {
  t.same(parseFirewallXml(await readFixture("v3-firewall.xml")), [
    { action: "accept", specialtarget: "dns" },
    { action: "accept", proto: "icmp" },
    { action: "accept", dst4: "0.0.0.0/0", proto: "tcp", dstports: { from: 22, to: 22 } },
    { action: "accept", dst4: "0.0.0.0/0", proto: "tcp", dstports: { from: 9418, to: 9418 } },
    { action: "accept", dst4: "192.168.0.1/32", proto: "tcp", dstports: { from: 1234, to: 1234 } },
    { action: "accept", dsthost: "fedorahosted.org", proto: "tcp", dstports: { from: 443, to: 443 } },
    { action: "accept", dsthost: "xenbits.xen.org", proto: "tcp", dstports: { from: 80, to: 80 } },
  ]);
});

t.test("version 1 conversion: policy, dns and icmp defaults, port ranges, netmasks, expire", async (t) => {
  const cases: Array<[string, FirewallRule[]]> = [
    [
      '<QubesFirewallRules policy="allow"/>',
      [{ action: "accept", specialtarget: "dns" }, { action: "accept", proto: "icmp" }, { action: "accept" }],
    ],
    [
      '<QubesFirewallRules policy="deny" dns="allow"/>',
      [
        { action: "accept", specialtarget: "dns" },
        { action: "drop", proto: "icmp" },
      ],
    ],
    [
      `<QubesFirewallRules policy="allow" dns="deny" icmp="deny" yumProxy="allow">
        <rule address="198.51.100.0" netmask="255.255.255.0" port="1000" toport="2000" proto="udp"/>
        <rule address="203.0.113.9" proto="any" expire="1767225600"/>
        <rule address="2001:db8::1" proto="tcp" port="443"/>
        <rule address="Example.ORG" netmask="8" port="25"/>
        <rule proto="icmp"/>
      </QubesFirewallRules>`,
      [
        { action: "drop", specialtarget: "dns" },
        { action: "drop", proto: "icmp" },
        { action: "drop", dst4: "198.51.100.0/24", proto: "udp", dstports: { from: 1000, to: 2000 } },
        { action: "drop", dst4: "203.0.113.9/32", expire: 1767225600 },
        { action: "drop", dst6: "2001:db8::1/128", proto: "tcp", dstports: { from: 443, to: 443 } },
        { action: "drop", dsthost: "example.org", proto: "tcp", dstports: { from: 25, to: 25 } },
        { action: "drop", proto: "icmp" },
        { action: "accept" },
      ],
    ],
  ];
  for (const [xml, rules] of cases) t.same(parseFirewallXml(xml), rules, xml.split("\n")[0] ?? "");
});

t.test("a bad firewall.xml is rejected with a message naming the file and the rule number", async (t) => {
  const v2 = (body: string) => `<firewall version="2"><rules>${body}</rules></firewall>`;
  const rule = (props: string) => `<rule><properties>${props}</properties></rule>`;
  const prop = (name: string, value: string) => `<property name="${name}">${value}</property>`;
  const accept = prop("action", "accept");
  const cases: Array<[string, string]> = [
    ["<firewall", "not well-formed XML: unexpected end of input"],
    ["<firewall></wall>", 'not well-formed XML: Opening and ending tag mismatch: "firewall" != "wall"'],
    ["", "not well-formed XML: missing root element"],
    [
      "<firewall version='3'/>",
      'root element <firewall> is neither <firewall version="2"> nor <QubesFirewallRules>',
    ],
    ["<rules/>", 'root element <rules> is neither <firewall version="2"> nor <QubesFirewallRules>'],
    [
      v2(rule(accept) + rule(prop("action", "allow"))),
      'rule 2: option "action": "allow" is not accept or drop',
    ],
    [
      v2(rule(accept + prop("proto", "tcp") + prop("dstports", "99999"))),
      'rule 1: option "dstports": port 99999 is out of range 0..65535',
    ],
    [v2(rule(accept + prop("colour", "red"))), 'rule 1: option "colour": unknown option'],
    [v2(rule(accept + accept)), 'rule 1: option "action": given more than once'],
    [
      v2(rule(prop("proto", "tcp"))),
      'rule 1: option "action": missing (every rule needs action=accept or action=drop)',
    ],
    [v2(`<rule><property name="action">accept</property></rule>`), "rule 1: unexpected element <property>"],
    [
      v2(rule(`<property>accept</property>`)),
      'rule 1: unexpected element <property> (expected <property name="...">)',
    ],
    [v2(rule(`<property name="action"><b>accept</b></property>`)), "rule 1: <property> must hold only text"],
    [v2(`${rule(accept)}text`), 'unexpected text "text" in <rules>'],
    ['<firewall version="2"><policy>drop</policy></firewall>', "unexpected element <policy>"],
    [
      '<QubesFirewallRules policy="block"/>',
      'attribute "policy" of <QubesFirewallRules> is "block", not allow or deny',
    ],
    ["<QubesFirewallRules/>", 'attribute "policy" of <QubesFirewallRules> is "", not allow or deny'],
    [
      '<QubesFirewallRules policy="deny" icmp="yes"/>',
      'attribute "icmp" of <QubesFirewallRules> is "yes", not allow or deny',
    ],
    [
      '<QubesFirewallRules policy="deny"><rule address="192.0.2.0" netmask="255.0.255.0"/></QubesFirewallRules>',
      'rule 1: Cannot parse netmask "255.0.255.0": the mask is not contiguous',
    ],
    [
      '<QubesFirewallRules policy="deny"><rule address="192.0.2.0" netmask="33"/></QubesFirewallRules>',
      'rule 1: Cannot parse "33": prefix length must be 0..32',
    ],
    [
      '<QubesFirewallRules policy="deny"><rule proto="any" port="22"/></QubesFirewallRules>',
      'rule 1: option "dstports": only valid with proto=tcp or proto=udp',
    ],
    [
      '<QubesFirewallRules policy="deny"><rule toport="22"/></QubesFirewallRules>',
      'rule 1: attribute "toport" without "port"',
    ],
    [
      '<QubesFirewallRules policy="deny"><rule colour="red"/></QubesFirewallRules>',
      'rule 1: unknown attribute "colour"',
    ],
    ['<QubesFirewallRules policy="deny"><allow/></QubesFirewallRules>', "rule 1: unexpected element <allow>"],
  ];
  for (const [xml, reason] of cases) {
    t.throws(
      () => parseFirewallXml(xml, "/q/appvms/work/firewall.xml"),
      new InvalidInputError(`Cannot read firewall rules "/q/appvms/work/firewall.xml": ${reason}`),
      xml,
    );
  }
});

t.test("every rule survives a write and a read", async (t) => {
  const rules: FirewallRule[] = [
    { action: "accept", dsthost: "example.com", proto: "tcp", dstports: { from: 443, to: 443 } },
    { action: "accept", dst4: "192.0.2.0/24", proto: "udp", dstports: { from: 1000, to: 2000 } },
    { action: "accept", dst6: "2001:db8::/32", proto: "icmp", icmptype: 128 },
    { action: "accept", dst4: "0.0.0.0/0", expire: 1767225600, comment: "any v4 [until 2026]: ok" },
    { action: "drop", specialtarget: "dns" },
    { action: "drop" },
  ];
  t.same(parseFirewallXml(formatFirewallXml(rules)), rules);
  t.same(parseFirewallXml(formatFirewallXml([])), []);
});

t.test("formatFirewallXml writes the layout of the spec example", async (t) => {
  t.equal(
    formatFirewallXml([
      { action: "accept", dsthost: "example.com", proto: "tcp", dstports: { from: 443, to: 443 } },
      { action: "drop", dst6: "2001:db8::/32", proto: "udp", dstports: { from: 1, to: 2 }, comment: "a b" },
    ]),
    `<firewall version="2">
  <rules>
    <rule>
      <properties>
        <property name="action">accept</property>
        <property name="dsthost">example.com</property>
        <property name="proto">tcp</property>
        <property name="dstports">443</property>
      </properties>
    </rule>
    <rule>
      <properties>
        <property name="action">drop</property>
        <property name="dsthost">2001:db8::/32</property>
        <property name="proto">udp</property>
        <property name="dstports">1-2</property>
        <property name="comment">a b</property>
      </properties>
    </rule>
  </rules>
</firewall>
`,
  );
});

t.test("loadFirewall of a VM without firewall.xml allows everything", async (t) => {
  const dir = t.testdir({});
  t.same(await loadFirewall(dir, "work"), [{ action: "accept" }]);
});

t.test("saveFirewall writes DIR/appvms/NAME/firewall.xml without the expired rules", async (t) => {
  const dir = t.testdir({});
  const rules: FirewallRule[] = [
    { action: "accept", proto: "tcp", dstports: { from: 22, to: 22 }, expire: 100 },
    { action: "accept", dsthost: "example.com", expire: 200 },
    { action: "drop" },
  ];
  await saveFirewall(dir, "work", rules, 100);
  t.equal(firewallXmlPath(dir, "work"), join(dir, "appvms", "work", "firewall.xml"));
  t.same(await loadFirewall(dir, "work"), rules.slice(1));
  t.same(await readdir(join(dir, "appvms", "work")), ["firewall.xml"], "no temporary file is left behind");
});

t.test("saveFirewall replaces the file by rename, so a reader never sees a half-written file", async (t) => {
  const dir = t.testdir({});
  await saveFirewall(dir, "work", [{ action: "drop" }], 0);
  const before = await open(firewallXmlPath(dir, "work"), "r");
  t.teardown(() => before.close());
  await saveFirewall(dir, "work", [{ action: "accept" }], 0);
  t.same(parseFirewallXml(await before.readFile("utf8")), [{ action: "drop" }], "the old file is untouched");
  t.same(await loadFirewall(dir, "work"), [{ action: "accept" }], "the new file is complete");
});

t.test("a failed save leaves the old file and no temporary file", async (t) => {
  const dir = t.testdir({});
  // firewall.xml is a directory: the rename fails after the temporary file was written.
  await mkdir(join(dir, "appvms", "work", "firewall.xml", "x"), { recursive: true });
  const path = firewallXmlPath(dir, "work");
  await t.rejects(
    saveFirewall(dir, "work", [{ action: "drop" }], 0),
    new SystemError(`Cannot save firewall rules "${path}"`),
  );
  t.same(await readdir(join(dir, "appvms", "work")), ["firewall.xml"]);
  t.same(await readdir(path), ["x"]);
});

t.test("loadFirewall names the file of a bad firewall.xml and refuses VM names that are paths", async (t) => {
  const dir = t.testdir({});
  await mkdir(join(dir, "appvms", "bad"), { recursive: true });
  await writeFile(
    join(dir, "appvms", "bad", "firewall.xml"),
    '<firewall version="2"><rules><rule/></rules></firewall>',
  );
  await t.rejects(
    loadFirewall(dir, "bad"),
    new InvalidInputError(
      `Cannot read firewall rules "${join(dir, "appvms", "bad", "firewall.xml")}": rule 1: option "action": missing (every rule needs action=accept or action=drop)`,
    ),
  );
  for (const name of ["../etc", "a/b", "", ".hidden", "x".repeat(32)]) {
    await t.rejects(
      loadFirewall(dir, name),
      new InvalidInputError(`Cannot use VM name "${name}": not a Qubes VM name`),
    );
  }
});

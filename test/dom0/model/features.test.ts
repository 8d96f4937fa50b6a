import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { readCollection } from "../../../dom0/model/collection.js";
import { setFeature, unsetFeature } from "../../../dom0/model/edit.js";
import { canonicalFeatureName, featureWithTemplate, validateFeature } from "../../../dom0/model/features.js";
import { ipv6Enabled } from "../../../dom0/model/network.js";
import { parseQubesXml } from "../../../dom0/store/qubes-xml.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/qubes-r4");
const loadDoc = () =>
  parseQubesXml(readFileSync(join(FIXTURES, "whonix-qubes.xml"), "utf8"), "whonix-qubes.xml");

t.test("the slash spellings of the original design are aliases of the R4 names", async (t) => {
  const cases: Array<[string, string]> = [
    ["net/fake-ip", "net.fake-ip"],
    ["net/fake-gateway", "net.fake-gateway"],
    ["net/fake-netmask", "net.fake-netmask"],
    ["net/fake-ip6", "net.fake-ip6"],
    ["net/fake-gateway6", "net.fake-gateway6"],
    ["net.fake-ip", "net.fake-ip"],
    ["ipv6", "ipv6"],
  ];
  for (const [name, canonical] of cases) t.equal(canonicalFeatureName(name), canonical, name);
});

t.test("valid values are accepted and stored in canonical form", async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ["net/fake-ip", "10.152.152.11", "net.fake-ip", "10.152.152.11"],
    ["net.fake-gateway", "10.152.152.10", "net.fake-gateway", "10.152.152.10"],
    ["net.fake-netmask", "255.255.192.0", "net.fake-netmask", "255.255.192.0"],
    ["net.fake-netmask", "18", "net.fake-netmask", "18"],
    ["net.fake-netmask", "0", "net.fake-netmask", "0"],
    ["net.fake-ip6", "FD00:0:0::0001", "net.fake-ip6", "fd00::1"],
    ["net.fake-gateway6", "fd00::", "net.fake-gateway6", "fd00::"],
    ["net.fake-ip", "", "net.fake-ip", ""],
    ["ipv6", "1", "ipv6", "1"],
    ["service.clocksync", "anything goes", "service.clocksync", "anything goes"],
  ];
  for (const [name, value, storedName, storedValue] of cases) {
    t.same(
      validateFeature("anon-1", name, value),
      { name: storedName, value: storedValue },
      `${name}=${value}`,
    );
  }
});

t.test("invalid values are refused with the qube, feature and value named", async (t) => {
  const cases: Array<[string, string, string]> = [
    [
      "net.fake-ip",
      "10.1.2",
      'Cannot set feature "net.fake-ip" of "anon-1" to "10.1.2": not an IPv4 address',
    ],
    [
      "net/fake-ip",
      "10.1.2.300",
      'Cannot set feature "net.fake-ip" of "anon-1" to "10.1.2.300": not an IPv4 address',
    ],
    [
      "net.fake-ip",
      "fd00::1",
      'Cannot set feature "net.fake-ip" of "anon-1" to "fd00::1": not an IPv4 address',
    ],
    [
      "net.fake-gateway",
      "010.0.0.1",
      'Cannot set feature "net.fake-gateway" of "anon-1" to "010.0.0.1": not an IPv4 address',
    ],
    [
      "net.fake-netmask",
      "255.0.255.0",
      'Cannot set feature "net.fake-netmask" of "anon-1" to "255.0.255.0": the netmask is not contiguous',
    ],
    [
      "net.fake-netmask",
      "33",
      'Cannot set feature "net.fake-netmask" of "anon-1" to "33": not a dotted netmask or a prefix length',
    ],
    [
      "net.fake-netmask",
      "/24",
      'Cannot set feature "net.fake-netmask" of "anon-1" to "/24": not a dotted netmask or a prefix length',
    ],
    [
      "net.fake-ip6",
      "10.0.0.1",
      'Cannot set feature "net.fake-ip6" of "anon-1" to "10.0.0.1": not an IPv6 address',
    ],
    [
      "net.fake-gateway6",
      "fd00:::1",
      'Cannot set feature "net.fake-gateway6" of "anon-1" to "fd00:::1": not an IPv6 address',
    ],
    [
      "net.fake-ip",
      "10.0.0.1\n",
      'Cannot set feature "net.fake-ip" of "anon-1" to "10.0.0.1\n": control characters are not allowed',
    ],
    [
      "bad name!",
      "1",
      'Cannot set feature "bad name!" of "anon-1": a feature name has 1..64 letters, digits, "_", "." or "-"',
    ],
  ];
  for (const [name, value, message] of cases)
    t.throws(() => validateFeature("anon-1", name, value), { message }, `${name}=${value}`);
});

t.test("a refused feature leaves the document unchanged", async (t) => {
  const doc = loadDoc();
  t.throws(() => setFeature(doc, "anon-whonix", "net.fake-ip", "10.1.2"));
  t.equal(readCollection(doc).vms.get("anon-whonix")!.features.size, 0);
  t.throws(() => setFeature(doc, "nope", "net.fake-ip", "10.1.2.3"), {
    message: 'Cannot find qube "nope": no such qube',
  });
});

t.test("features inherit from the template chain unless the qube sets its own", async (t) => {
  const doc = loadDoc();
  const value = (vm: string) => {
    const c = readCollection(doc);
    return featureWithTemplate(c, c.vms.get(vm)!, "net.fake-ip");
  };
  t.same(["anon-whonix", "anon-2", "disp1234", "work"].map(value), [
    "10.152.152.11",
    "",
    "10.152.152.11",
    undefined,
  ]);
  setFeature(doc, "whonix-ws-17-dvm", "net/fake-ip", "192.0.2.9");
  t.equal(value("disp1234"), "192.0.2.9", "a disposable inherits from its disposable template first");
  t.equal(unsetFeature(doc, "whonix-ws-17-dvm", "net/fake-ip"), true);
  t.equal(unsetFeature(doc, "whonix-ws-17-dvm", "net/fake-ip"), false);
  t.equal(value("disp1234"), "10.152.152.11");
});

t.test("ipv6 is inherited along the netvm chain, not from the template", async (t) => {
  const doc = loadDoc();
  const enabled = (vm: string) => {
    const c = readCollection(doc);
    return ipv6Enabled(c, c.vms.get(vm)!);
  };
  t.same(["sys-net", "sys-firewall", "work", "sys-whonix", "anon-whonix", "debian-12"].map(enabled), [
    true,
    true,
    true,
    false,
    false,
    false,
  ]);
  setFeature(doc, "debian-12", "ipv6", "1");
  t.equal(enabled("debian-12"), true);
  t.equal(enabled("sys-whonix"), false, "a template's ipv6 does not reach its VMs");
  unsetFeature(doc, "sys-whonix", "ipv6");
  t.equal(enabled("anon-whonix"), true, "without its own value the gateway inherits sys-firewall's");
});

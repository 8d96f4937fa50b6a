import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { type Collection, readCollection } from "../../../dom0/model/collection.js";
import {
  connectedVms,
  dnsServers,
  gateway,
  gateway6,
  ip6ForId,
  ipForId,
  nativeIp,
  nativeIp6,
  netvmOf,
  qubesVmType,
  visibleGateway,
  visibleGateway6,
  visibleIp,
  visibleIp6,
  visibleNetmask,
} from "../../../dom0/model/network.js";
import { parseQubesXml } from "../../../dom0/store/qubes-xml.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/qubes-r4");
const load = (name: string): Collection =>
  readCollection(parseQubesXml(readFileSync(join(FIXTURES, name), "utf8"), name));

t.test(
  "native IPv4 addresses follow Qubes' rule x = id >> 8, y = id & 255, also for ids of 255 and more",
  async (t) => {
    const cases: Array<[137 | 138, number, string]> = [
      [137, 0, "10.137.0.0"],
      [137, 1, "10.137.0.1"],
      [137, 254, "10.137.0.254"],
      [137, 255, "10.137.0.255"],
      [137, 256, "10.137.1.0"],
      [137, 300, "10.137.1.44"],
      [137, 65535, "10.137.255.255"],
      [138, 1234, "10.138.4.210"],
      [138, 9999, "10.138.39.15"],
    ];
    for (const [second, id, ip] of cases) t.equal(ipForId(second, id), ip, `${second}/${id}`);
  },
);

t.test("native IPv6 addresses are fd09:24ef:4179::a89:<qid hex> and ::a8a:<dispid hex>", async (t) => {
  const cases: Array<[0xa89 | 0xa8a, number, string]> = [
    [0xa89, 5, "fd09:24ef:4179::a89:5"],
    [0xa89, 255, "fd09:24ef:4179::a89:ff"],
    [0xa89, 300, "fd09:24ef:4179::a89:12c"],
    [0xa8a, 1234, "fd09:24ef:4179::a8a:4d2"],
    [0xa89, 0, "fd09:24ef:4179::a89:0"],
  ];
  for (const [kind, id, ip] of cases) t.equal(ip6ForId(kind, id), ip, `${kind.toString(16)}/${id}`);
});

t.test("every network property of the Whonix-like fixture", async (t) => {
  const c = load("whonix-qubes.xml");
  const row = (name: string) => {
    const vm = c.vms.get(name)!;
    return [
      netvmOf(c, vm)?.name,
      nativeIp(c, vm),
      visibleIp(c, vm),
      visibleGateway(c, vm),
      visibleNetmask(c, vm),
      nativeIp6(c, vm),
      visibleIp6(c, vm),
      visibleGateway6(c, vm),
      gateway(c, vm),
      gateway6(c, vm),
      qubesVmType(c, vm),
    ];
  };
  const U = undefined;
  const expected: Record<string, unknown[]> = {
    // a NetVM: IPv6 switched on by its own feature
    "sys-net": [
      U,
      "10.137.0.4",
      "10.137.0.4",
      U,
      U,
      "fd09:24ef:4179::a89:4",
      "fd09:24ef:4179::a89:4",
      U,
      "10.137.0.4",
      "fd09:24ef:4179::a89:4",
      "NetVM",
    ],
    // IPv6 inherited from its netvm
    "sys-firewall": [
      "sys-net",
      "10.137.0.5",
      "10.137.0.5",
      "10.137.0.4",
      "255.255.255.255",
      "fd09:24ef:4179::a89:5",
      "fd09:24ef:4179::a89:5",
      "fd09:24ef:4179::a89:4",
      "10.137.0.5",
      "fd09:24ef:4179::a89:5",
      "ProxyVM",
    ],
    // ipv6 = "" switches IPv6 off for the gateway and, through it, its clients
    "sys-whonix": [
      "sys-firewall",
      "10.137.0.6",
      "10.137.0.6",
      "10.137.0.5",
      "255.255.255.255",
      U,
      U,
      U,
      "10.137.0.6",
      U,
      "ProxyVM",
    ],
    // fake addresses inherited from the template
    "anon-whonix": [
      "sys-whonix",
      "10.137.0.7",
      "10.152.152.11",
      "10.152.152.10",
      "255.255.192.0",
      U,
      U,
      U,
      U,
      U,
      "AppVM",
    ],
    // its own net.fake-ip = "" switches the template's fake IP off; gateway and netmask stay faked
    "anon-2": [
      "sys-whonix",
      "10.137.0.8",
      "10.137.0.8",
      "10.152.152.10",
      "255.255.192.0",
      U,
      U,
      U,
      U,
      U,
      "AppVM",
    ],
    // a disposable: 10.138 from dispid, netvm and features from its disposable template
    disp1234: [
      "sys-whonix",
      "10.138.4.210",
      "10.152.152.11",
      "10.152.152.10",
      "255.255.192.0",
      U,
      U,
      U,
      U,
      U,
      "AppVM",
    ],
    // netvm from default_netvm, IPv6 from sys-net through sys-firewall
    work: [
      "sys-firewall",
      "10.137.0.11",
      "10.137.0.11",
      "10.137.0.5",
      "255.255.255.255",
      "fd09:24ef:4179::a89:b",
      "fd09:24ef:4179::a89:b",
      "fd09:24ef:4179::a89:5",
      U,
      U,
      "AppVM",
    ],
    // templates have no netvm by default
    "debian-12": [U, U, U, U, U, U, U, U, U, U, "TemplateVM"],
    dom0: [U, U, U, U, U, U, U, U, U, U, "AppVM"],
  };
  for (const [name, values] of Object.entries(expected)) t.same(row(name), values, name);
  const names = (provider: string) => connectedVms(c, c.vms.get(provider)!).map((vm) => vm.name);
  t.same(names("sys-net"), ["sys-firewall"]);
  t.same(names("sys-firewall"), ["sys-whonix", "work"]);
  t.same(names("sys-whonix"), ["anon-whonix", "anon-2", "whonix-ws-17-dvm", "disp1234"]);
  t.same(dnsServers(c, c.vms.get("work")!), ["10.139.1.1", "10.139.1.2"]);
  t.equal(dnsServers(c, c.vms.get("debian-12")!), undefined);
});

t.test("the R4 fixture: explicit ip, empty netvm, default_netvm that would point at itself", async (t) => {
  const c = load("v4-qubes.xml");
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ["test-work", "sys-firewall", "192.168.0.1"], // explicit ip property
    ["untrusted", undefined, undefined], // netvm "" = no network
    ["personal", "sys-firewall", "10.137.0.22"],
    ["test-proxy", "sys-net", "10.137.0.30"],
    ["sys-firewall", undefined, "10.137.0.21"], // default_netvm is itself: no loop, no netvm; still a provider
    ["sys-net", undefined, "10.137.0.2"],
    ["debian-8", undefined, undefined],
  ];
  for (const [name, netvm, ip] of cases) {
    const vm = c.vms.get(name)!;
    t.same([netvmOf(c, vm)?.name, nativeIp(c, vm)], [netvm, ip], name);
  }
});

t.test("netvm loops written by hand into qubes.xml resolve to no netvm instead of looping", async (t) => {
  const vm = (name: string, qid: number, netvm: string) =>
    `<domain class="AppVM"><properties><property name="name">${name}</property><property name="qid">${qid}</property>` +
    `<property name="provides_network">True</property><property name="netvm">${netvm}</property></properties></domain>`;
  const c = readCollection(
    parseQubesXml(
      `<qubes><domains>${vm("a", 1, "b")}${vm("b", 2, "c")}${vm("c", 3, "b")}${vm("d", 4, "d")}</domains></qubes>`,
      "x",
    ),
  );
  const netvm = (name: string) => netvmOf(c, c.vms.get(name)!)?.name;
  t.same(["a", "b", "c", "d"].map(netvm), ["b", undefined, undefined, undefined]);
});

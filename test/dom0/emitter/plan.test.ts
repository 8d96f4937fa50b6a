import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { isDom0Key } from "../../../dom0/emitter/owned-keys.js";
import { chunkAddresses, planKeys } from "../../../dom0/emitter/plan.js";
import { readCollection } from "../../../dom0/model/collection.js";
import { parseQubesXml } from "../../../dom0/store/qubes-xml.js";
import { type FirewallRule, parseApiRule } from "../../../shared/firewall/index.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../fixtures/qubes-r4");
const collection = readCollection(
  parseQubesXml(readFileSync(join(FIXTURES, "whonix-qubes.xml"), "utf8"), "whonix-qubes.xml"),
);
const ALL = new Set(collection.vms.keys());
const NOW = 1_800_000_000;
const rules = (...texts: string[]): FirewallRule[] => texts.map(parseApiRule);
const sorted = (keys: Map<string, string> | undefined) => Object.fromEntries([...(keys ?? [])].sort());

t.test("a fake-IP client's own DB holds its visible addresses", async (t) => {
  const plan = planKeys({ collection, firewall: new Map(), now: NOW, running: ALL });
  t.same(sorted(plan.get("anon-whonix")), {
    "/name": "anon-whonix",
    "/qubes-gateway": "10.152.152.10",
    "/qubes-ip": "10.152.152.11",
    "/qubes-mac": "00:16:3e:5e:6c:00",
    "/qubes-netmask": "255.255.192.0",
    "/qubes-primary-dns": "10.139.1.1",
    "/qubes-secondary-dns": "10.139.1.2",
    "/qubes-vm-type": "AppVM",
    "/type": "AppVM",
  });
});

t.test(
  "a ProxyVM's DB holds its gateway data, native connected-ips, mapped IPs and firewall of running clients",
  async (t) => {
    const running = new Set(["sys-whonix", "anon-whonix", "disp1234"]);
    const firewall = new Map([
      ["anon-whonix", rules("action=accept proto=tcp dstports=9050", "action=drop")],
    ]);
    const plan = planKeys({ collection, firewall, now: NOW, running });
    t.same([...plan.keys()].sort(), ["anon-whonix", "disp1234", "sys-whonix"], "only running qubes get keys");
    t.same(sorted(plan.get("sys-whonix")), {
      "/connected-ips": "10.137.0.7 10.137.0.8 10.137.0.9 10.138.4.210",
      "/connected-ips6": "",
      "/mapped-ip/10.137.0.7/visible-gateway": "10.152.152.10",
      "/mapped-ip/10.137.0.7/visible-ip": "10.152.152.11",
      "/mapped-ip/10.138.4.210/visible-gateway": "10.152.152.10",
      "/mapped-ip/10.138.4.210/visible-ip": "10.152.152.11",
      "/name": "sys-whonix",
      "/qubes-firewall/10.137.0.7": "",
      "/qubes-firewall/10.137.0.7/0000": "action=accept proto=tcp dstports=9050-9050",
      "/qubes-firewall/10.137.0.7/0001": "action=drop",
      "/qubes-firewall/10.137.0.7/policy": "drop",
      "/qubes-firewall/10.138.4.210": "",
      "/qubes-firewall/10.138.4.210/0000": "action=accept",
      "/qubes-firewall/10.138.4.210/policy": "drop",
      "/qubes-gateway": "10.137.0.5",
      "/qubes-ip": "10.137.0.6",
      "/qubes-mac": "00:16:3e:5e:6c:00",
      "/qubes-netmask": "255.255.255.255",
      "/qubes-netvm-gateway": "10.137.0.6",
      "/qubes-netvm-netmask": "255.255.255.255",
      "/qubes-netvm-network": "10.137.0.6",
      "/qubes-netvm-primary-dns": "10.139.1.1",
      "/qubes-netvm-secondary-dns": "10.139.1.2",
      "/qubes-primary-dns": "10.139.1.1",
      "/qubes-secondary-dns": "10.139.1.2",
      "/qubes-vm-type": "ProxyVM",
      "/type": "AppVM",
    });
  },
);

t.test("IPv4 and IPv6 rule sets split by destination family and keep gaps for expired rules", async (t) => {
  const firewall = new Map([
    [
      "work",
      rules(
        "action=accept dst4=192.0.2.0/24",
        "action=accept dst6=2001:db8::/32",
        `action=drop proto=udp expire=${NOW - 1}`,
        `action=drop proto=icmp expire=${NOW + 60}`,
        "action=accept specialtarget=dns",
      ),
    ],
  ]);
  const plan = planKeys({ collection, firewall, now: NOW, running: new Set(["sys-firewall", "work"]) });
  const fw = Object.fromEntries(
    [...plan.get("sys-firewall")!].filter(([k]) => k.startsWith("/qubes-firewall/")).sort(),
  );
  t.same(fw, {
    "/qubes-firewall/10.137.0.11": "",
    "/qubes-firewall/10.137.0.11/0000": "action=accept dst4=192.0.2.0/24",
    "/qubes-firewall/10.137.0.11/0003": "action=drop proto=icmp",
    "/qubes-firewall/10.137.0.11/0004": "action=accept specialtarget=dns",
    "/qubes-firewall/10.137.0.11/policy": "drop",
    "/qubes-firewall/fd09:24ef:4179::a89:b": "",
    "/qubes-firewall/fd09:24ef:4179::a89:b/0001": "action=accept dst6=2001:db8::/32",
    "/qubes-firewall/fd09:24ef:4179::a89:b/0003": "action=drop proto=icmp",
    "/qubes-firewall/fd09:24ef:4179::a89:b/0004": "action=accept specialtarget=dns",
    "/qubes-firewall/fd09:24ef:4179::a89:b/policy": "drop",
  });
  t.same(sorted(plan.get("work")), {
    "/name": "work",
    "/qubes-gateway": "10.137.0.5",
    "/qubes-gateway6": "fd09:24ef:4179::a89:5",
    "/qubes-ip": "10.137.0.11",
    "/qubes-ip6": "fd09:24ef:4179::a89:b",
    "/qubes-mac": "00:16:3e:5e:6c:00",
    "/qubes-netmask": "255.255.255.255",
    "/qubes-primary-dns": "10.139.1.1",
    "/qubes-secondary-dns": "10.139.1.2",
    "/qubes-vm-type": "AppVM",
    "/type": "AppVM",
  });
  const sysFirewall = plan.get("sys-firewall")!;
  t.same(
    [
      sysFirewall.get("/connected-ips"),
      sysFirewall.get("/connected-ips6"),
      sysFirewall.get("/qubes-netvm-gateway6"),
    ],
    ["10.137.0.6 10.137.0.11", "fd09:24ef:4179::a89:b", "fd09:24ef:4179::a89:5"],
  );
});

t.test("a NetVM has no client keys of its own and dom0 gets nothing", async (t) => {
  const plan = planKeys({ collection, firewall: new Map(), now: NOW, running: new Set(["sys-net", "dom0"]) });
  t.same([...plan.keys()], ["sys-net"]);
  const keys = [...plan.get("sys-net")!.keys()].sort();
  t.same(keys, [
    "/connected-ips",
    "/connected-ips6",
    "/name",
    "/qubes-netvm-gateway",
    "/qubes-netvm-gateway6",
    "/qubes-netvm-netmask",
    "/qubes-netvm-network",
    "/qubes-netvm-primary-dns",
    "/qubes-netvm-secondary-dns",
    "/qubes-vm-type",
    "/type",
  ]);
});

t.test("dom0 owns exactly its keys, never the agent's", async (t) => {
  const cases: Array<[string, boolean]> = [
    ["/qubes-ip", true],
    ["/qubes-firewall/10.137.0.7", true],
    ["/qubes-firewall/10.137.0.7/0001", true],
    ["/mapped-ip/10.137.0.7/visible-ip", true],
    ["/connected-ips6", true],
    ["/qubes-firewall-handled/10.137.0.7", false],
    ["/qubes-firewall-error/10.137.0.7", false],
    ["/dns/10.137.0.7/example.com", false],
    ["/qubes-service/foo", false],
    ["/names", false],
  ];
  for (const [key, owned] of cases) t.equal(isDom0Key(key), owned, key);
});

t.test("address lists longer than one QubesDB value are split at whole addresses", async (t) => {
  const many = Array.from({ length: 299 }, (_, i) => `10.137.${(i + 3) >> 8}.${(i + 3) & 255}`);
  const chunks = chunkAddresses(many);
  t.equal(chunks.length, 2);
  t.ok(chunks.every((c) => Buffer.byteLength(c) <= 3071));
  t.same(chunks.join(" ").split(" "), many);
  t.same(chunkAddresses([]), [""]);
  t.same(chunkAddresses(["10.137.0.2"]), ["10.137.0.2"]);
  t.equal(isDom0Key("/connected-ips/1"), true);
});

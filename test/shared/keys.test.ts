import t from "tap";
import { InvalidInputError } from "../../shared/errors.js";
import {
  CONNECTED_IPS_KEY,
  connectedIpsKey,
  dnsKey,
  firewallErrorKey,
  firewallHandledKey,
  firewallPolicyKey,
  firewallRuleKey,
  firewallRulesPrefix,
  firewallSignalKey,
  formatConnectedIps,
  handledCounterSchema,
  ipv4Schema,
  ipv6Schema,
  joinConnectedIps,
  macSchema,
  mappedIpKey,
  mappedIpPrefix,
  NETVM_GATEWAY6_KEY,
  netmaskSchema,
  parseConnectedIps,
  parseFirewallSignalKey,
  parseKeyValue,
  parseMappedIpKey,
  QUBES_IP_KEY,
  QUBES_MAC_KEY,
  qubesVmTypeSchema,
  vifNameSchema,
  vmNameSchema,
} from "../../shared/keys.js";

t.test("key builders spell every per-address key of spec/keys.md", async (t) => {
  const cases: Array<[string, string]> = [
    [mappedIpKey("10.137.0.5"), "/mapped-ip/10.137.0.5/visible-ip"],
    [mappedIpKey("10.137.0.5", "visible-gateway"), "/mapped-ip/10.137.0.5/visible-gateway"],
    [mappedIpPrefix("10.137.0.5"), "/mapped-ip/10.137.0.5/"],
    [firewallSignalKey("10.137.0.5"), "/qubes-firewall/10.137.0.5"],
    [firewallRulesPrefix("10.137.0.5"), "/qubes-firewall/10.137.0.5/"],
    [firewallPolicyKey("10.137.0.5"), "/qubes-firewall/10.137.0.5/policy"],
    [firewallRuleKey("10.137.0.5", 0), "/qubes-firewall/10.137.0.5/0000"],
    [firewallRuleKey("10.137.0.5", 42), "/qubes-firewall/10.137.0.5/0042"],
    [firewallRuleKey("fd09:24ef:4179::a89:5", 9999), "/qubes-firewall/fd09:24ef:4179::a89:5/9999"],
    [firewallHandledKey("10.137.0.5"), "/qubes-firewall-handled/10.137.0.5"],
    [firewallErrorKey("10.137.0.5"), "/qubes-firewall-error/10.137.0.5"],
    [connectedIpsKey(4), "/connected-ips"],
    [connectedIpsKey(6), "/connected-ips6"],
    [CONNECTED_IPS_KEY, "/connected-ips"],
    [QUBES_IP_KEY, "/qubes-ip"],
    [QUBES_MAC_KEY, "/qubes-mac"],
    [NETVM_GATEWAY6_KEY, "/qubes-netvm-gateway6"],
  ];
  for (const [actual, expected] of cases) t.equal(actual, expected);
});

t.test("the longest IPv6 address still fits the 63-character key limit", async (t) => {
  const longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  t.equal(firewallHandledKey(longest).length, 63);
  t.equal(firewallErrorKey(longest), `/qubes-firewall-error/${longest}`);
});

t.test("dnsKey gives /dns/N/HOST, or undefined when the key would exceed 63 characters", async (t) => {
  t.equal(dnsKey("10.137.0.5", "example.com"), "/dns/10.137.0.5/example.com");
  const fits = "a".repeat(63 - "/dns/10.137.0.5/".length);
  t.equal(dnsKey("10.137.0.5", fits), `/dns/10.137.0.5/${fits}`);
  t.equal(dnsKey("10.137.0.5", `${fits}b`), undefined);
});

t.test("key builders refuse anything but an address, and bad rule indexes", async (t) => {
  const cases: Array<[() => unknown, string]> = [
    [
      () => firewallSignalKey("10.137.0.5/x"),
      'Cannot build a QubesDB key for "10.137.0.5/x": not an IPv4 or IPv6 address',
    ],
    [() => mappedIpKey("work"), 'Cannot build a QubesDB key for "work": not an IPv4 or IPv6 address'],
    [() => dnsKey("", "x"), 'Cannot build a QubesDB key for "": not an IPv4 or IPv6 address'],
    [
      () => firewallRuleKey("10.137.0.5", 10000),
      'Cannot build a firewall rule key for index "10000": it must be 0..9999',
    ],
    [
      () => firewallRuleKey("10.137.0.5", -1),
      'Cannot build a firewall rule key for index "-1": it must be 0..9999',
    ],
    [
      () => dnsKey("10.137.0.5", "a b"),
      'Cannot build QubesDB key "/dns/10.137.0.5/a b": keys are at most 63 characters of A-Z a-z 0-9 _ / . : @ -',
    ],
  ];
  for (const [build, message] of cases) t.throws(build, new InvalidInputError(message), message);
});

t.test("watch paths are recognised: the firewall commit signal and mapped-ip keys", async (t) => {
  t.equal(parseFirewallSignalKey("/qubes-firewall/10.137.0.5"), "10.137.0.5");
  t.equal(parseFirewallSignalKey("/qubes-firewall/10.137.0.5/0000"), undefined);
  t.equal(parseFirewallSignalKey("/qubes-firewall/10.137.0.5/"), undefined);
  t.equal(parseFirewallSignalKey("/qubes-firewall/"), undefined);
  t.equal(parseFirewallSignalKey("/qubes-firewall-handled/10.137.0.5"), undefined);
  t.same(parseMappedIpKey("/mapped-ip/10.137.0.5/visible-ip"), { n: "10.137.0.5", leaf: "visible-ip" });
  t.same(parseMappedIpKey("/mapped-ip/10.137.0.5/visible-gateway"), {
    n: "10.137.0.5",
    leaf: "visible-gateway",
  });
  t.equal(parseMappedIpKey("/mapped-ip/10.137.0.5/other"), undefined);
  t.equal(parseMappedIpKey("/mapped-ip/10.137.0.5/visible-ip/x"), undefined);
  t.equal(parseMappedIpKey("/mapped-ip/10.137.0.5"), undefined);
});

t.test("parseConnectedIps reads space-separated addresses; the empty string means none", async (t) => {
  const cases: Array<[string, 4 | 6, string[]]> = [
    ["", 4, []],
    ["10.137.0.5", 4, ["10.137.0.5"]],
    ["10.137.0.5 10.137.0.6", 4, ["10.137.0.5", "10.137.0.6"]],
    [" 10.137.0.5  10.137.0.6 10.137.0.5 ", 4, ["10.137.0.5", "10.137.0.6"]],
    ["", 6, []],
    [
      "FD09:24EF:4179:0:0:0:A89:5 fd09:24ef:4179::a89:6",
      6,
      ["fd09:24ef:4179::a89:5", "fd09:24ef:4179::a89:6"],
    ],
  ];
  for (const [text, family, addresses] of cases) t.same(parseConnectedIps(text, family), addresses, text);
  t.equal(formatConnectedIps(["10.137.0.5", "10.137.0.6"]), "10.137.0.5 10.137.0.6");
  t.equal(formatConnectedIps([]), "");
});

t.test("parseConnectedIps rejects anything that is not an address of the family", async (t) => {
  const cases: Array<[string, 4 | 6, string]> = [
    [
      "10.137.0.5 10.137.0",
      4,
      'Cannot parse "/connected-ips" value "10.137.0.5 10.137.0": "10.137.0" is not an IPv4 address',
    ],
    [
      "10.137.0.5\n10.137.0.6",
      4,
      'Cannot parse "/connected-ips" value "10.137.0.5\\x0a10.137.0.6": "10.137.0.5\\x0a10.137.0.6" is not an IPv4 address',
    ],
    ["fd09::1", 4, 'Cannot parse "/connected-ips" value "fd09::1": "fd09::1" is not an IPv4 address'],
    [
      "10.137.0.5",
      6,
      'Cannot parse "/connected-ips6" value "10.137.0.5": "10.137.0.5" is not an IPv6 address',
    ],
  ];
  for (const [text, family, message] of cases) {
    t.throws(() => parseConnectedIps(text, family), new InvalidInputError(message), JSON.stringify(text));
  }
});

t.test("value schemas accept the formats of spec/keys.md and normalise them", async (t) => {
  const accepted: Array<[{ safeParse(v: unknown): { success: boolean; data?: unknown } }, string, unknown]> =
    [
      [ipv4Schema, "10.137.0.5", "10.137.0.5"],
      [ipv6Schema, "FD09:24EF:4179::A89:5", "fd09:24ef:4179::a89:5"],
      [netmaskSchema, "255.255.255.0", "255.255.255.0"],
      [netmaskSchema, "255.255.255.255", "255.255.255.255"],
      [macSchema, "00:16:3E:5E:6C:00", "00:16:3e:5e:6c:00"],
      [vifNameSchema, "vif12.0", "vif12.0"],
      [vifNameSchema, "vif32767.9999", "vif32767.9999"],
      [vmNameSchema, "sys-firewall", "sys-firewall"],
      [qubesVmTypeSchema, "ProxyVM", "ProxyVM"],
      [handledCounterSchema, "17", 17],
    ];
  for (const [schema, text, value] of accepted) {
    const result = schema.safeParse(text);
    t.ok(result.success, text);
    t.same(result.data, value, text);
  }
  const rejected: Array<[{ safeParse(v: unknown): { success: boolean } }, string]> = [
    [ipv4Schema, "10.137.0.05"],
    [ipv4Schema, "10.137.0"],
    [ipv6Schema, "fd09::1::2"],
    [netmaskSchema, "255.0.255.0"],
    [netmaskSchema, "24"],
    [macSchema, "00:16:3e:5e:6c"],
    [macSchema, "00-16-3e-5e-6c-00"],
    [vifNameSchema, "vif1"],
    [vifNameSchema, "vif01.0"],
    [vifNameSchema, "eth0"],
    [vifNameSchema, "vif123456.0"],
    [vmNameSchema, "1vm"],
    [vmNameSchema, "a/b"],
    [qubesVmTypeSchema, "HVM"],
    [handledCounterSchema, "-1"],
  ];
  for (const [schema, text] of rejected) t.notOk(schema.safeParse(text).success, text);
});

t.test("parseKeyValue names the key and the value in its error", async (t) => {
  t.equal(parseKeyValue(macSchema, QUBES_MAC_KEY, "FE:FF:FF:FF:FF:FF"), "fe:ff:ff:ff:ff:ff");
  t.throws(
    () => parseKeyValue(macSchema, QUBES_MAC_KEY, "zz"),
    new InvalidInputError('Cannot parse "/qubes-mac" value "zz": not a MAC address xx:xx:xx:xx:xx:xx'),
  );
});

t.test(
  "joinConnectedIps joins /connected-ips with its numbered continuations in numeric order",
  async (t) => {
    const entries = new Map([
      ["/connected-ips/10", "10.137.0.40"],
      ["/connected-ips", "10.137.0.10 10.137.0.11"],
      ["/connected-ips/2", "10.137.0.30"],
      ["/connected-ips/1", "10.137.0.20 10.137.0.11"],
      ["/connected-ips6", "fd09:24ef:4179::a89:a"],
      ["/connected-ips/x", "10.137.0.99"],
    ]);
    t.same(joinConnectedIps(entries, 4), [
      "10.137.0.10",
      "10.137.0.11",
      "10.137.0.20",
      "10.137.0.30",
      "10.137.0.40",
    ]);
    t.same(joinConnectedIps(entries, 6), ["fd09:24ef:4179::a89:a"]);
    t.same(joinConnectedIps(new Map(), 4), []);
    t.throws(
      () => joinConnectedIps(new Map([["/connected-ips/1", "10.137.0.300"]]), 4),
      new InvalidInputError(
        'Cannot parse "/connected-ips/1" value "10.137.0.300": "10.137.0.300" is not an IPv4 address',
      ),
    );
  },
);

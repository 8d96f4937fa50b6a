import t from "tap";
import { InvalidInputError } from "../../../shared/errors.js";
import {
  changeRuleProto,
  type FirewallProto,
  type FirewallRule,
  isRuleActive,
  ruleFamily,
  validateRule,
} from "../../../shared/firewall/index.js";

t.test("validateRule returns hand-made rules canonical and frozen", async (t) => {
  const cases: Array<[unknown, unknown]> = [
    [{ action: "accept" }, { action: "accept" }],
    [
      { action: "accept", dst4: "192.0.2.1" },
      { action: "accept", dst4: "192.0.2.1/32" },
    ],
    [
      { action: "drop", dsthost: "2001:DB8::1/64" },
      { action: "drop", dst6: "2001:db8::/64" },
    ],
    [
      { action: "accept", dsthost: "Example.COM" },
      { action: "accept", dsthost: "example.com" },
    ],
    [
      { action: "accept", proto: "udp", dstports: { from: 53, to: 53 }, expire: 10, comment: " dns " },
      { action: "accept", proto: "udp", dstports: { from: 53, to: 53 }, expire: 10, comment: "dns" },
    ],
    [{ action: "accept", comment: undefined }, { action: "accept" }],
  ];
  for (const [input, expected] of cases) {
    const rule = validateRule(input);
    t.same(rule, expected, JSON.stringify(input));
    t.ok(Object.isFrozen(rule));
  }
});

t.test("validateRule rejects wrong shapes and wrong values", async (t) => {
  const cases: Array<[unknown, string]> = [
    [
      { action: "accept", foo: 1 },
      'Cannot validate firewall rule "{\\"action\\":\\"accept\\",\\"foo\\":1}": rule: Unrecognized key: "foo"',
    ],
    [null, 'Cannot validate firewall rule "null": rule: Invalid input: expected object, received null'],
    [
      { action: 1 },
      'Cannot validate firewall rule "{\\"action\\":1}": action: Invalid input: expected string, received number',
    ],
    [
      { action: "accept", proto: "tcp", dstports: { from: 80.5, to: 81 } },
      'Cannot validate firewall rule "action=accept proto=tcp dstports=80.5-81": option "dstports": "80.5-81" is not a port or a port range N-M',
    ],
    [
      { action: "accept", icmptype: 3 },
      'Cannot validate firewall rule "action=accept icmptype=3": option "icmptype": only valid with proto=icmp',
    ],
    [
      { action: "accept", expire: -1 },
      'Cannot validate firewall rule "action=accept expire=-1": option "expire": "-1" is not a UNIX time (digits only)',
    ],
    [
      { action: "accept", dst4: "192.0.2.0/24", dsthost: "x.org" },
      'Cannot validate firewall rule "action=accept dst4=192.0.2.0/24 dsthost=x.org": options "dst4" and "dsthost": at most one destination per rule',
    ],
  ];
  for (const [input, message] of cases)
    t.throws(() => validateRule(input), new InvalidInputError(message), message);
});

t.test("a rule is active until its expire time and belongs to the family of its address", async (t) => {
  t.equal(isRuleActive({ action: "accept" }, 1e12), true);
  t.equal(isRuleActive({ action: "accept", expire: 100 }, 99), true);
  t.equal(isRuleActive({ action: "accept", expire: 100 }, 100), false);
  t.equal(ruleFamily({ action: "accept", dst4: "192.0.2.0/24" }), 4);
  t.equal(ruleFamily({ action: "accept", dst6: "::/0" }), 6);
  t.equal(ruleFamily({ action: "accept", dsthost: "example.com" }), undefined);
});

t.test("changing the protocol drops the options that no longer fit it", async (t) => {
  const web = {
    action: "accept",
    dsthost: "example.com",
    proto: "tcp",
    dstports: { from: 443, to: 443 },
  } as const;
  const ping = { action: "accept", proto: "icmp", icmptype: 8 } as const;
  const cases: Array<[FirewallRule, FirewallProto | undefined, FirewallRule]> = [
    [
      web,
      "udp",
      { action: "accept", dsthost: "example.com", proto: "udp", dstports: { from: 443, to: 443 } },
    ],
    [web, "icmp", { action: "accept", dsthost: "example.com", proto: "icmp" }],
    [web, undefined, { action: "accept", dsthost: "example.com" }],
    [ping, "tcp", { action: "accept", proto: "tcp" }],
    [ping, "icmp", ping],
  ];
  for (const [rule, proto, expected] of cases) t.same(changeRuleProto(rule, proto), expected, `${proto}`);
});

import t from "tap";
import { InvalidInputError } from "../../../shared/errors.js";
import { parseApiRule, parseQubesDbRuleSet, planFirewallKeys } from "../../../shared/firewall/index.js";

const rules = [
  "action=accept specialtarget=dns",
  "action=accept dst4=192.0.2.0/24 proto=tcp dstports=443",
  "action=accept dst6=2001:db8::/32",
  "action=accept dsthost=example.com proto=tcp dstports=80 expire=1000",
  "action=accept proto=icmp icmptype=8 expire=2000 comment=ping",
  "action=drop dst4=0.0.0.0/0",
  "action=drop",
].map(parseApiRule);

t.test("planFirewallKeys publishes the policy and each fitting active rule under its index", async (t) => {
  t.same(
    [...planFirewallKeys(rules, 4, 500)],
    [
      ["policy", "drop"],
      ["0000", "action=accept specialtarget=dns"],
      ["0001", "action=accept dst4=192.0.2.0/24 proto=tcp dstports=443-443"],
      ["0003", "action=accept dsthost=example.com proto=tcp dstports=80-80"],
      ["0004", "action=accept proto=icmp icmptype=8"],
      ["0005", "action=drop dst4=0.0.0.0/0"],
      ["0006", "action=drop"],
    ],
  );
  t.same(
    [...planFirewallKeys(rules, 6, 500)],
    [
      ["policy", "drop"],
      ["0000", "action=accept specialtarget=dns"],
      ["0002", "action=accept dst6=2001:db8::/32"],
      ["0003", "action=accept dsthost=example.com proto=tcp dstports=80-80"],
      ["0004", "action=accept proto=icmp icmptype=8"],
      ["0006", "action=drop"],
    ],
  );
});

t.test("planFirewallKeys skips expired rules and keeps the numbering of the full list", async (t) => {
  const cases: Array<[number, string[]]> = [
    [999, ["policy", "0000", "0001", "0003", "0004", "0005", "0006"]],
    [1000, ["policy", "0000", "0001", "0004", "0005", "0006"]],
    [1999, ["policy", "0000", "0001", "0004", "0005", "0006"]],
    [2000, ["policy", "0000", "0001", "0005", "0006"]],
  ];
  for (const [now, keys] of cases) t.same([...planFirewallKeys(rules, 4, now).keys()], keys, `now=${now}`);
});

t.test("planFirewallKeys of no rules publishes only the policy, which drops everything", async (t) => {
  t.same([...planFirewallKeys([], 4, 0)], [["policy", "drop"]]);
});

t.test("planFirewallKeys numbers past 999 with four digits and refuses more than 10000 rules", async (t) => {
  const many = Array.from({ length: 10000 }, () => parseApiRule("action=accept"));
  const keys = planFirewallKeys(many, 4, 0);
  t.equal(keys.size, 10001);
  t.equal(keys.get("9999"), "action=accept");
  t.throws(
    () => planFirewallKeys([...many, parseApiRule("action=drop")], 4, 0),
    new InvalidInputError("Cannot publish 10001 firewall rules: at most 10000 fit in NNNN keys"),
  );
});

t.test("parseQubesDbRuleSet reads back what planFirewallKeys published, in index order", async (t) => {
  for (const family of [4, 6] as const) {
    const published = planFirewallKeys(rules, family, 500);
    const shuffled = new Map([...published].reverse());
    const expected = rules
      .filter((rule) => (family === 4 ? rule.dst6 === undefined : rule.dst4 === undefined))
      .map(({ expire: _e, comment: _c, ...rest }) => rest);
    t.same(parseQubesDbRuleSet(shuffled, family), expected, `IPv${family}`);
  }
});

t.test("parseQubesDbRuleSet accepts full key paths from a multiread", async (t) => {
  const entries = new Map([
    ["/qubes-firewall/10.137.0.5/policy", "drop"],
    ["/qubes-firewall/10.137.0.5/0010", "action=drop"],
    ["/qubes-firewall/10.137.0.5/0002", "action=accept proto=tcp dstports=22-22"],
  ]);
  t.same(parseQubesDbRuleSet(entries, 4), [
    { action: "accept", proto: "tcp", dstports: { from: 22, to: 22 } },
    { action: "drop" },
  ]);
});

t.test("parseQubesDbRuleSet rejects a bad set with a message naming the key and the rule", async (t) => {
  const cases: Array<[Array<[string, string]>, 4 | 6, string]> = [
    [[["0000", "action=accept"]], 4, 'key "policy" is missing'],
    [[["policy", "accept"]], 4, 'key "policy": "accept" is not drop'],
    [
      [
        ["policy", "drop"],
        ["000", "action=accept"],
      ],
      4,
      'key "000" is neither four digits nor "policy"',
    ],
    [
      [
        ["policy", "drop"],
        ["00000", "action=accept"],
      ],
      4,
      'key "00000" is neither four digits nor "policy"',
    ],
    [
      [
        ["policy", "drop"],
        ["0a00", "action=accept"],
      ],
      4,
      'key "0a00" is neither four digits nor "policy"',
    ],
    [
      [
        ["policy", "drop"],
        ["/qubes-firewall/10.137.0.5/0000/x", "action=accept"],
      ],
      4,
      'key "/qubes-firewall/10.137.0.5/0000/x" is neither four digits nor "policy"',
    ],
    [
      [
        ["policy", "drop"],
        ["", "action=accept"],
      ],
      4,
      'key "" is neither four digits nor "policy"',
    ],
    [
      [
        ["policy", "drop"],
        ["0001", "action=accept proto=tcp dstports=99999"],
      ],
      4,
      'key "0001": Cannot parse firewall rule "action=accept proto=tcp dstports=99999": option "dstports": port 99999 is out of range 0..65535',
    ],
    [
      [
        ["policy", "drop"],
        ["0003", "action=accept dst6=::1"],
      ],
      4,
      'key "0003" "action=accept dst6=::1": a dst6 rule in the IPv4 set',
    ],
    [
      [
        ["policy", "drop"],
        ["0004", "action=accept dst4=192.0.2.1/32"],
      ],
      6,
      'key "0004" "action=accept dst4=192.0.2.1/32": a dst4 rule in the IPv6 set',
    ],
    [
      [
        ["policy", "drop"],
        ["0005", "action=accept expire=5"],
      ],
      4,
      'key "0005": Cannot parse firewall rule "action=accept expire=5": option "expire": not part of the QubesDB form',
    ],
  ];
  for (const [entries, family, reason] of cases) {
    t.throws(
      () => parseQubesDbRuleSet(new Map(entries), family),
      new InvalidInputError(`Cannot parse firewall rule set for IPv${family}: ${reason}`),
      reason,
    );
  }
});

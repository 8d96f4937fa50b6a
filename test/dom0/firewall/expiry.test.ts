import t from "tap";
import { activeRules, nextExpiry } from "../../../dom0/firewall/index.js";
import type { FirewallRule } from "../../../shared/firewall/index.js";

const rules: FirewallRule[] = [
  { action: "accept", expire: 300 },
  { action: "accept", proto: "icmp" },
  { action: "accept", expire: 100 },
  { action: "accept", expire: 200 },
  { action: "drop" },
];

t.test("activeRules keeps the rules that have not expired, in order", async (t) => {
  const cases: Array<[number, number[]]> = [
    [0, [300, 100, 200]],
    [99, [300, 100, 200]],
    [100, [300, 200]],
    [250, [300]],
    [300, []],
  ];
  for (const [now, expires] of cases) {
    const active = activeRules(rules, now);
    t.same(
      active.filter((rule) => rule.expire !== undefined).map((rule) => rule.expire),
      expires,
      `now=${now}`,
    );
    t.equal(active.length, expires.length + 2, `now=${now}: rules without expire stay`);
  }
});

t.test("nextExpiry is the earliest expire time after now", async (t) => {
  const cases: Array<[number, number | undefined]> = [
    [0, 100],
    [100, 200],
    [199, 200],
    [200, 300],
    [300, undefined],
  ];
  for (const [now, next] of cases) t.equal(nextExpiry(rules, now), next, `now=${now}`);
  t.equal(nextExpiry([{ action: "accept" }], 0), undefined);
});

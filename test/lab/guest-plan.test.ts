import t from "tap";
import { guestConfigFrom, planGuestCommands } from "../../scripts/lab/guest-plan.js";

t.test("the guest config is read from /qubes-ip, /qubes-netmask and /qubes-gateway", async (t) => {
  const cases: Array<[string, Record<string, string>, unknown]> = [
    [
      "fake IP with the Whonix /18",
      { "/qubes-ip": "10.152.152.11", "/qubes-netmask": "255.255.192.0", "/qubes-gateway": "10.152.152.10" },
      { ip: "10.152.152.11", prefix: 18, gateway: "10.152.152.10" },
    ],
    [
      "native IP with Qubes' /32",
      { "/qubes-ip": "10.137.0.7", "/qubes-netmask": "255.255.255.255", "/qubes-gateway": "10.137.0.3" },
      { ip: "10.137.0.7", prefix: 32, gateway: "10.137.0.3" },
    ],
    ["nothing published yet", { "/qubes-ip": "10.137.0.7" }, undefined],
  ];
  for (const [name, values, want] of cases)
    t.same(guestConfigFrom(new Map(Object.entries(values))), want, name);
});

t.test("planGuestCommands turns what eth0 has into what QubesDB says", async (t) => {
  const want = { ip: "10.152.152.11", prefix: 18, gateway: "10.152.152.10" };
  const route = [
    ["route", "replace", "10.152.152.10", "dev", "eth0", "scope", "link"],
    ["route", "replace", "default", "via", "10.152.152.10", "dev", "eth0", "onlink"],
  ];
  const cases: Array<[string, { addresses: string[]; defaultVia: string | undefined }, string[][]]> = [
    [
      "a fresh eth0",
      { addresses: [], defaultVia: undefined },
      [["addr", "add", "10.152.152.11/18", "dev", "eth0"], ...route],
    ],
    ["already configured", { addresses: ["10.152.152.11/18"], defaultVia: "10.152.152.10" }, []],
    [
      "a live change of the fake IP",
      { addresses: ["10.152.152.111/18"], defaultVia: "10.152.152.10" },
      [
        ["addr", "del", "10.152.152.111/18", "dev", "eth0"],
        ["addr", "add", "10.152.152.11/18", "dev", "eth0"],
        ...route,
      ],
    ],
    ["only the gateway changed", { addresses: ["10.152.152.11/18"], defaultVia: "10.152.152.1" }, route],
  ];
  for (const [name, observed, commands] of cases) t.same(planGuestCommands(want, observed), commands, name);
});

import t from "tap";
import { parseLabOptions } from "../../scripts/lab/options.js";

t.test("lab options default to Whonix's addresses and normalise the netmask", async (t) => {
  t.same(parseLabOptions({}), {
    dir: "/run/qubes-fakeip-lab",
    clients: 3,
    fakeIp: "10.152.152.11",
    fakeGateway: "10.152.152.10",
    fakeNetmask: "255.255.192.0",
  });
  t.equal(parseLabOptions({ fakeNetmask: "24" }).fakeNetmask, "255.255.255.0", "a prefix length is accepted");
  t.equal(parseLabOptions({ clients: "20" }).clients, 20);
});

t.test("bad lab options are refused with the offending value", async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ fakeIp: "10.1.2" }, 'Cannot use --fake-ip "10.1.2": not an IPv4 address'],
    [{ clients: "500" }, 'Cannot use --clients "500": Too big: expected number to be <=120'],
    [
      { fakeNetmask: "255.0.255.0" },
      'Cannot use --fake-netmask "255.0.255.0": Cannot parse netmask "255.0.255.0": the mask is not contiguous',
    ],
  ];
  for (const [raw, message] of cases) t.throws(() => parseLabOptions(raw), { message }, message);
});

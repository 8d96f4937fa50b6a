import t from "tap";
import { type DesiredVif, planDesiredVif, type VifDbFacts, type VifEvent } from "../../proxyvm/desired.js";

const event: VifEvent = { vif: "vif3.0", ip: "10.137.0.5", online: true };
const db: VifDbFacts = { netvmGateway: "10.137.0.1" };
const fakeDb: VifDbFacts = { ...db, visibleIp: "10.200.0.10", visibleGateway: "10.200.0.1" };
const plain = {
  kind: "plain",
  vif: "vif3.0",
  metric: 32749,
  mac: "00:16:3e:5e:6c:00",
  native: { ip: "10.137.0.5", ip6: undefined },
  gateway: "10.137.0.1",
  gateway6: undefined,
};

t.test("facts become the desired state of a vif", async (t) => {
  const cases: [string, VifEvent | undefined, VifDbFacts, DesiredVif][] = [
    ["no event: absent", undefined, db, { kind: "absent", vif: "vif3.0" }],
    ["offline: absent", { ...event, online: false }, db, { kind: "absent", vif: "vif3.0" }],
    ["no mapping: plain", event, db, plain as DesiredVif],
    [
      "visible IP equal to the native one: plain",
      event,
      { ...db, visibleIp: "10.137.0.5" },
      plain as DesiredVif,
    ],
    ["an empty visible IP: plain", event, { ...db, visibleIp: "" }, plain as DesiredVif],
    [
      "a MAC is normalised to lower case",
      { ...event, mac: "00:16:3E:5E:6C:AB" },
      db,
      { ...plain, mac: "00:16:3e:5e:6c:ab" } as DesiredVif,
    ],
    [
      "a visible IP: fake",
      event,
      fakeDb,
      {
        ...plain,
        kind: "fake",
        native: { ip: "10.137.0.5" },
        visible: { ip: "10.200.0.10", gateway: "10.200.0.1" },
      } as DesiredVif,
    ],
    [
      "IPv6 of a plain VM needs the ProxyVM's own IPv6 gateway",
      { ...event, ip6: "fd09:24ef:4179::a89:5" },
      { ...db, netvmGateway6: "fd09:24ef:4179::a89:1" },
      {
        ...plain,
        native: { ip: "10.137.0.5", ip6: "fd09:24ef:4179::a89:5" },
        gateway6: "fd09:24ef:4179::a89:1",
      } as DesiredVif,
    ],
    ["IPv6 without the ProxyVM's IPv6 gateway: none", { ...event, ip6: "fd09::5" }, db, plain as DesiredVif],
    [
      "a fake-IP VM without visible-ip6 gets no IPv6",
      { ...event, ip6: "fd09::5" },
      { ...fakeDb, netvmGateway6: "fd09::1" },
      {
        ...plain,
        kind: "fake",
        native: { ip: "10.137.0.5" },
        visible: { ip: "10.200.0.10", gateway: "10.200.0.1" },
      } as DesiredVif,
    ],
    [
      "a fake-IP VM with visible-ip6",
      { ...event, ip6: "fd09::5" },
      { ...fakeDb, netvmGateway6: "fd09::1", visibleIp6: "fd00::10", visibleGateway6: "FD00::1" },
      {
        ...plain,
        kind: "fake",
        native: { ip: "10.137.0.5", ip6: "fd09::5" },
        gateway6: "fd09::1",
        visible: { ip: "10.200.0.10", gateway: "10.200.0.1", ip6: "fd00::10", gateway6: "fd00::1" },
      } as DesiredVif,
    ],
  ];
  for (const [name, e, facts, expected] of cases) t.same(planDesiredVif("vif3.0", e, facts), expected, name);
});

t.test("invalid facts leave the vif blocked with the reason", async (t) => {
  const cases: [string, string, VifEvent, VifDbFacts, string][] = [
    [
      "a vif name that is not vifN.M",
      "eth0",
      { ...event, vif: "eth0" },
      db,
      'Cannot use vif name "eth0": not a vif name vifDOMID.IDX',
    ],
    [
      "a domid above Xen's largest",
      "vif32753.0",
      { ...event, vif: "vif32753.0" },
      db,
      'Cannot use vif name "vif32753.0": domain id above 32752',
    ],
    [
      "a native address that is not IPv4",
      "vif3.0",
      { ...event, ip: "10.137.0.256" },
      db,
      'Cannot use native IPv4 address "10.137.0.256": not an IPv4 address',
    ],
    [
      "a MAC of the wrong form",
      "vif3.0",
      { ...event, mac: "00:16:3e" },
      db,
      'Cannot use MAC address "00:16:3e": not a MAC address xx:xx:xx:xx:xx:xx',
    ],
    ["no ProxyVM gateway", "vif3.0", event, {}, 'Cannot route "vif3.0": "/qubes-netvm-gateway" is missing'],
    [
      "a bad visible IP",
      "vif3.0",
      event,
      { ...db, visibleIp: "x" },
      'Cannot use /mapped-ip/10.137.0.5/visible-ip "x": not an IPv4 address',
    ],
    [
      "no visible gateway",
      "vif3.0",
      event,
      { ...db, visibleIp: "10.200.0.10" },
      'Cannot use a fake IP for "vif3.0": "/mapped-ip/10.137.0.5/visible-gateway" is missing',
    ],
    [
      "a visible IP equal to the visible gateway",
      "vif3.0",
      event,
      { ...fakeDb, visibleGateway: "10.200.0.10" },
      'Cannot use visible IP "10.200.0.10" for "vif3.0": it equals the visible gateway',
    ],
    [
      "a visible gateway equal to the native IP",
      "vif3.0",
      event,
      { ...fakeDb, visibleGateway: "10.137.0.5" },
      'Cannot use visible gateway "10.137.0.5" for "vif3.0": it equals the native IP',
    ],
    [
      "a visible IPv6 without its gateway",
      "vif3.0",
      { ...event, ip6: "fd09::5" },
      { ...fakeDb, netvmGateway6: "fd09::1", visibleIp6: "fd00::10" },
      'Cannot use a fake IPv6 for "vif3.0": "/mapped-ip/10.137.0.5/visible-gateway6" is missing',
    ],
  ];
  for (const [name, vif, e, facts, reason] of cases) {
    t.same(planDesiredVif(vif, e, facts), { kind: "blocked", vif, reason }, name);
  }
});

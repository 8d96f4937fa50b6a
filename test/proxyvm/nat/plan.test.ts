import t from "tap";
import type { FakeVif, PlainVif } from "../../../proxyvm/desired.js";
import {
  planNatNft,
  planStructure,
  planTeardown,
  planVif,
  readNatTableMark,
  renderInsideOp,
  renderStructOp,
  type StructOp,
} from "../../../proxyvm/nat/plan.js";

const lines = (ops: readonly StructOp[]) => ops.map((op) => renderStructOp(op, 4242));

const plain: PlainVif = {
  kind: "plain",
  vif: "vif3.0",
  metric: 32749,
  mac: "00:16:3e:5e:6c:00",
  native: { ip: "10.137.0.5" },
  gateway: "10.137.0.1",
};
const fake: FakeVif = { ...plain, kind: "fake", visible: { ip: "10.200.0.10", gateway: "10.200.0.1" } };
const fake6: FakeVif = {
  ...fake,
  native: { ip: "10.137.0.5", ip6: "fd09::5" },
  gateway6: "fd09::1",
  visible: { ip: "10.200.0.10", gateway: "10.200.0.1", ip6: "fd00::10", gateway6: "fd00::1" },
};

t.test("a plain vif is planned on the ProxyVM side only, in kernel order", async (t) => {
  t.same(planVif(plain), {
    vif: "vif3.0",
    proxyvm: [
      { op: "sysctl", path: "net/ipv4/ip_forward", value: "1" },
      { op: "sysctl", path: "net/ipv4/conf/vif3.0/proxy_arp", value: "1" },
      { op: "addr", dev: "vif3.0", address: "10.137.0.1", prefix: 32 },
      { op: "link-up", dev: "vif3.0" },
      { op: "route", dev: "vif3.0", dst: "10.137.0.5", prefix: 32, metric: 32749 },
      { op: "neigh", dev: "vif3.0", address: "10.137.0.5", mac: "00:16:3e:5e:6c:00" },
    ],
  });
});

t.test(
  "IPv6 adds sysctls, the gateway address, a route and a neighbour; a link-local gateway is not added",
  async (t) => {
    const ops = planVif({
      ...plain,
      native: { ip: "10.137.0.5", ip6: "fd09::5" },
      gateway6: "fd09::1",
    }).proxyvm;
    t.same(
      ops.map(
        (op) =>
          `${op.op} ${"path" in op ? op.path : "address" in op ? op.address : "dst" in op ? op.dst : ""}`,
      ),
      [
        "sysctl net/ipv4/ip_forward",
        "sysctl net/ipv4/conf/vif3.0/proxy_arp",
        "sysctl net/ipv6/conf/all/forwarding",
        "sysctl net/ipv6/conf/vif3.0/disable_ipv6",
        "sysctl net/ipv6/conf/vif3.0/proxy_ndp",
        "addr 10.137.0.1",
        "addr fd09::1",
        "link-up ",
        "route 10.137.0.5",
        "neigh 10.137.0.5",
        "route fd09::5",
        "neigh fd09::5",
      ],
    );
    const linkLocal = planVif({
      ...plain,
      native: { ip: "10.137.0.5", ip6: "fd09::5" },
      gateway6: "fe80::1",
    }).proxyvm;
    t.notOk(linkLocal.some((op) => op.op === "addr" && op.address === "fe80::1"));
  },
);

t.test("a fake vif gets a namespace with these inside steps and this NAT table", async (t) => {
  const plan = planVif(fake);
  t.same(plan.proxyvm, planVif(plain).proxyvm, "past the namespace it is planned exactly like a plain vif");
  t.same(plan.namespace?.inside.map(renderInsideOp), [
    "link set dev vif3.0 addrgenmode none",
    "link set dev vif3.0-p addrgenmode none",
    "addr flush dev vif3.0  # keeping 10.200.0.1/32",
    "addr flush dev vif3.0-p  # keeping 10.137.0.5/32",
    "route flush dev vif3.0  # keeping 10.200.0.10/32",
    "neigh flush dev vif3.0 nud permanent  # keeping 10.200.0.10",
    "addr add 10.200.0.1/32 dev vif3.0",
    "addr add 10.137.0.5/32 dev vif3.0-p",
    "link set dev vif3.0 up",
    "link set dev vif3.0-p up",
    "route replace 10.200.0.10/32 dev vif3.0",
    "neigh replace 10.200.0.10 lladdr 00:16:3e:5e:6c:00 dev vif3.0 nud permanent",
  ]);
  t.equal(
    plan.namespace?.nft,
    `table netdev qubes-fakeip-nat
delete table netdev qubes-fakeip-nat
table netdev qubes-fakeip-nat {
\tcomment "${plan.namespace?.mark}"
\tchain from-vm {
\t\ttype filter hook ingress device "vif3.0" priority 0; policy drop;
\t\tarp operation request arp saddr ip 10.200.0.10 arp daddr ip 10.200.0.1 accept
\t\tip saddr 10.200.0.10 ip daddr 10.200.0.1 ip daddr set 10.137.0.1 ip saddr set 10.137.0.5 fwd to "vif3.0-p"
\t\tip saddr 10.200.0.10 ip saddr set 10.137.0.5 fwd to "vif3.0-p"
\t}
\tchain from-proxyvm {
\t\ttype filter hook ingress device "vif3.0-p" priority 0; policy drop;
\t\tip daddr 10.137.0.5 icmp type { destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem } @th,160,32 0x0a890005 drop
\t\tip saddr 10.137.0.1 ip daddr 10.137.0.5 ip saddr set 10.200.0.1 ip daddr set 10.200.0.10 fwd to "vif3.0"
\t\tip daddr 10.137.0.5 ip daddr set 10.200.0.10 fwd to "vif3.0"
\t}
}
`,
  );
});

t.test("the NAT table carries a mark of its content, the same fresh or replacing", async (t) => {
  const mark = planVif(fake).namespace?.mark ?? "";
  t.match(mark, /^qubes-fakeip-nat [0-9a-f]{16}$/);
  t.equal(planVif(fake, { freshNamespace: true }).namespace?.mark, mark, "fresh: same content, same mark");
  t.notMatch(
    planVif(fake, { freshNamespace: true }).namespace?.nft ?? "",
    "delete table",
    "fresh: nothing to replace",
  );
  const moved = planVif({ ...fake, visible: { ip: "10.200.0.11", gateway: "10.200.0.1" } }).namespace?.mark;
  t.not(moved, mark, "another visible IP, another mark");
  t.equal(
    readNatTableMark(`table netdev qubes-fakeip-nat {\n\tcomment "${mark}"\n\tchain from-vm {\n`),
    mark,
    "read back from nft's listing",
  );
  t.equal(readNatTableMark("table netdev qubes-fakeip-nat {\n}\n"), undefined);
});

t.test("a visible gateway equal to the ProxyVM's needs no gateway rewrite", async (t) => {
  const nft = planNatNft({ ...fake, visible: { ip: "10.200.0.10", gateway: "10.137.0.1" } });
  t.notMatch(nft, "ip daddr set 10.137.0.1");
  t.notMatch(nft, "ip saddr set 10.137.0.1");
});

t.test(
  "visible-ip6 adds the IPv6 rewrite, neighbour discovery for the gateway and the ICMPv6 error drop",
  async (t) => {
    const nft = planNatNft(fake6);
    for (const line of [
      "ip6 saddr { fe80::/10, fd00::10 } ip6 hoplimit 255 icmpv6 type nd-neighbor-solicit @th,64,128 0xfd000000000000000000000000000001 accept",
      'ip6 saddr fd00::10 ip6 daddr fd00::1 ip6 daddr set fd09::1 ip6 saddr set fd09::5 fwd to "vif3.0-p"',
      'ip6 saddr fd00::10 ip6 saddr set fd09::5 fwd to "vif3.0-p"',
      "ip6 daddr fd09::5 icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } @th,128,128 0xfd090000000000000000000000000005 drop",
      'ip6 saddr fd09::1 ip6 daddr fd09::5 ip6 saddr set fd00::1 ip6 daddr set fd00::10 fwd to "vif3.0"',
      'ip6 daddr fd09::5 ip6 daddr set fd00::10 fwd to "vif3.0"',
    ]) {
      t.match(nft, `\t\t${line}\n`, line);
    }
    const inside6 = planVif({
      ...fake6,
      visible: { ...fake6.visible, ip6: "FD00:0:0::10", gateway6: "fd00:0::1" },
    }).namespace?.inside.map(renderInsideOp);
    t.ok(
      inside6?.includes("addr flush dev vif3.0  # keeping 10.200.0.1/32 fd00::1/128") &&
        inside6.includes("route flush dev vif3.0  # keeping 10.200.0.10/32 fd00::10/128") &&
        inside6.includes("neigh flush dev vif3.0 nud permanent  # keeping 10.200.0.10 fd00::10"),
      "a flush keeps the planned IPv6 entries, in the kernel's canonical text",
    );
    t.ok(
      planVif(fake6).namespace?.inside.map(renderInsideOp).includes("addr add fd00::1/128 dev vif3.0 nodad"),
      "the gateway's IPv6 address",
    );
  },
);

t.test("structure steps follow the observed shape", async (t) => {
  const veth = [
    "link add vif3.0-p address 00:16:3e:5e:6c:00 netns vif3.0-nat type veth peer name vif3.0 address fe:ff:ff:ff:ff:ff",
    "link set dev vif3.0 alias qubes-fakeip-nat",
  ];
  const none = { ops: [] as string[], gone: false };
  const cases: [string, PlainVif | FakeVif, boolean, "xen" | "ours" | "none", object][] = [
    [
      "fake, fresh",
      fake,
      false,
      "xen",
      { ...none, ops: ["netns add vif3.0-nat", "link set dev vif3.0 netns vif3.0-nat", ...veth] },
    ],
    [
      "fake, namespace left over",
      fake,
      true,
      "xen",
      { ...none, ops: ["link set dev vif3.0 netns vif3.0-nat", ...veth] },
    ],
    ["fake, interrupted after the move", fake, true, "none", { ...none, ops: veth }],
    ["fake, complete", fake, true, "ours", none],
    [
      "fake, namespace deleted under us",
      fake,
      false,
      "ours",
      { ...none, ops: ["link del dev vif3.0"], gone: true },
    ],
    ["fake, nothing anywhere", fake, false, "none", { ...none, gone: true }],
    ["plain, fresh", plain, false, "xen", none],
    ["plain, nothing anywhere", plain, false, "none", { ...none, gone: true }],
    ["plain, stale namespace", plain, true, "xen", { ...none, ops: ["netns del vif3.0-nat"] }],
    [
      "plain, was fake",
      plain,
      true,
      "ours",
      {
        ops: ["link del dev vif3.0", "-n vif3.0-nat link set dev vif3.0 netns 4242", "netns del vif3.0-nat"],
        gone: false,
      },
    ],
  ];
  for (const [name, desired, netnsExists, proxyLink, expected] of cases) {
    const planned = planStructure(desired, { netnsExists, proxyLink });
    t.same({ ops: lines(planned.ops), gone: planned.gone }, expected, name);
  }
});

t.test("teardown removes only what the agent owns", async (t) => {
  t.same(
    lines(planTeardown("vif3.0", { netnsExists: true, proxyLink: "ours" })),
    ["netns del vif3.0-nat"],
    "the namespace takes the veth pair with it",
  );
  t.same(lines(planTeardown("vif3.0", { netnsExists: false, proxyLink: "ours" })), ["link del dev vif3.0"]);
  t.same(
    lines(planTeardown("vif3.0", { netnsExists: false, proxyLink: "xen" })),
    [],
    "Xen's own vif is never deleted",
  );
});

import t from "tap";
import { planAntispoofChange, planConnected } from "../../../proxyvm/nat/antispoof.js";

const declaration = `table inet qubes-fakeip-antispoof {
\tset allowed4 { type ifname . ipv4_addr; }
\tset allowed6 { type ifname . ipv6_addr; }
\tset ndp6 { type ifname; }
\tset connected4 { type ipv4_addr; }
\tset connected6 { type ipv6_addr; }
\tchain prerouting { type filter hook prerouting priority raw; policy accept; }
\tchain from-vif { }
\tchain forward { type filter hook forward priority filter - 10; policy accept; }
\tset icmp-errors4 { type icmp_type; elements = { destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem }; }
\tset icmp-errors6 { type icmpv6_type; elements = { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }; }
\tmap inner4 { type ipv4_addr : ipv4_addr; }
\tmap inner6 { type ipv6_addr : ipv6_addr; }
\tchain icmp-inner { type filter hook postrouting priority 300; policy accept; }
}
flush chain inet qubes-fakeip-antispoof prerouting
flush chain inet qubes-fakeip-antispoof from-vif
flush chain inet qubes-fakeip-antispoof forward
add rule inet qubes-fakeip-antispoof prerouting iifname "vif*" jump from-vif
add rule inet qubes-fakeip-antispoof prerouting ip saddr @connected4 drop
add rule inet qubes-fakeip-antispoof prerouting ip6 saddr @connected6 drop
add rule inet qubes-fakeip-antispoof from-vif iifname . ip saddr @allowed4 accept
add rule inet qubes-fakeip-antispoof from-vif iifname . ip6 saddr @allowed6 accept
add rule inet qubes-fakeip-antispoof from-vif iifname @ndp6 ip6 saddr { ::, fe80::/10 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept
add rule inet qubes-fakeip-antispoof from-vif drop
add rule inet qubes-fakeip-antispoof forward iifname "vif*" oifname "vif*" drop
add rule inet qubes-fakeip-antispoof forward tcp flags syn tcp option maxseg size set rt mtu
`;

t.test("an allow-list change removes first (add-then-delete), then adds", async (t) => {
  t.equal(
    planAntispoofChange(
      [{ iif: "vif3.0", address: "fd09::5", family: 6 }],
      [{ iif: "vif3.0", address: "10.137.0.5", family: 4 }],
      { add: ["vif3.0"] },
    ),
    `${declaration}add element inet qubes-fakeip-antispoof allowed4 { "vif3.0" . 10.137.0.5 }
delete element inet qubes-fakeip-antispoof allowed4 { "vif3.0" . 10.137.0.5 }
add element inet qubes-fakeip-antispoof allowed6 { "vif3.0" . fd09::5 }
add element inet qubes-fakeip-antispoof ndp6 { "vif3.0" }
`,
  );
});

t.test("the connected sets are replaced whole", async (t) => {
  t.equal(
    planConnected(["10.137.0.5", "10.137.0.6"], []),
    `${declaration}flush chain inet qubes-fakeip-antispoof icmp-inner
flush set inet qubes-fakeip-antispoof connected4
flush set inet qubes-fakeip-antispoof connected6
add element inet qubes-fakeip-antispoof connected4 { 10.137.0.5, 10.137.0.6 }
`,
  );
});

t.test("the ICMP inner-rewrite maps are replaced whole when the kernel's content is unknown", async (t) => {
  const maps = {
    v4: [
      ["10.137.0.5", "10.200.0.10"],
      ["10.137.0.6", "10.200.0.10"],
    ] as const,
    v6: [],
  };
  t.match(
    planAntispoofChange([], [], {}, { maps, applied: undefined }),
    `flush map inet qubes-fakeip-antispoof inner4
flush map inet qubes-fakeip-antispoof inner6
add element inet qubes-fakeip-antispoof inner4 { 10.137.0.5 : 10.200.0.10, 10.137.0.6 : 10.200.0.10 }
`,
  );
});

t.test("else only the entries that differ change, a changed value deleted first", async (t) => {
  const applied = {
    v4: [
      ["10.137.0.5", "10.200.0.10"],
      ["10.137.0.6", "10.200.0.10"],
      ["10.137.0.7", "10.200.0.10"],
    ] as const,
    v6: [],
  };
  const maps = {
    v4: [
      ["10.137.0.5", "10.200.0.10"],
      ["10.137.0.6", "10.201.0.20"],
      ["10.137.0.8", "10.200.0.10"],
    ] as const,
    v6: [],
  };
  const script = planAntispoofChange([], [], {}, { maps, applied });
  t.match(
    script,
    `delete element inet qubes-fakeip-antispoof inner4 { 10.137.0.6, 10.137.0.7 }
add element inet qubes-fakeip-antispoof inner4 { 10.137.0.6 : 10.201.0.20, 10.137.0.8 : 10.200.0.10 }
`,
  );
  t.notMatch(script, "flush map");
});

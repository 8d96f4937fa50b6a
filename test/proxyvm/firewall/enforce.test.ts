/**
 * The compiled ruleset in a real kernel: each option allows and blocks exactly
 * what it should, with real TCP, UDP and ICMP from a client namespace through
 * a router namespace (where the nft runs) to a server namespace.
 */
import t from "tap";
import { compileFullScript, type VmInput } from "../../../proxyvm/firewall/compile.js";
import { applyNftScript } from "../../../proxyvm/system/nft.js";
import { parseQubesDbRule } from "../../../shared/firewall/index.js";
import { inNetns, netnsSkipReason } from "../../helpers/netns.js";
import {
  createTopology,
  DNS1,
  DNS2,
  FAR,
  FAR6,
  type Probe,
  probe,
  SERVER,
  SERVER2,
  SERVER6,
  VM1,
  VM2,
  VM3,
  VM6,
} from "./topology.js";

const tcp = (dst: string, port: number, src = VM1): Probe => ({ kind: "tcp", src, dst, port });
const udp = (dst: string, port: number, src = VM1): Probe => ({ kind: "udp", src, dst, port });
const icmp = (dst: string, type: number, src = VM1): Probe => ({ kind: "icmp", src, dst, type });

interface Case {
  name: string;
  rules: string[];
  rules6?: string[];
  resolved?: Record<string, string[]>;
  probes: Array<[Probe, string]>;
}

const OK = "ok";
const NO = "admin-prohibited";

const cases: Case[] = [
  {
    name: "proto=tcp dstports=80-80 allows TCP port 80 only",
    rules: ["action=accept proto=tcp dstports=80-80"],
    probes: [
      [tcp(SERVER, 80), OK],
      [tcp(SERVER, 443), NO],
      [udp(SERVER, 5000), NO],
      [icmp(SERVER, 8), NO],
    ],
  },
  {
    name: "dst4 allows its network and nothing else",
    rules: ["action=accept dst4=198.51.100.0/24"],
    probes: [
      [tcp(SERVER, 22), OK],
      [udp(SERVER2, 5000), OK],
      [icmp(SERVER, 8), OK],
      [tcp(FAR, 22), NO],
    ],
  },
  {
    name: "proto=udp with a port range allows those UDP ports only",
    rules: ["action=accept proto=udp dstports=5000-5001"],
    probes: [
      [udp(SERVER, 5000), OK],
      [udp(SERVER, 5001), OK],
      [udp(SERVER, 53), NO],
      [tcp(SERVER, 5000), NO],
    ],
  },
  {
    name: "port ranges compare as numbers",
    rules: ["action=accept proto=tcp dstports=8-100"],
    probes: [
      [tcp(SERVER, 22), OK],
      [tcp(SERVER, 80), OK],
      [tcp(SERVER, 443), NO],
      [tcp(SERVER, 8080), NO],
    ],
  },
  {
    name: "the first matching rule decides (drop before accept)",
    rules: ["action=drop dst4=198.51.100.2/32", "action=accept"],
    probes: [
      [tcp(SERVER2, 80), NO],
      [tcp(SERVER, 80), OK],
      [tcp(FAR, 80), OK],
    ],
  },
  {
    name: "the first matching rule decides (accept before drop)",
    rules: [
      "action=accept dst4=198.51.100.0/24 proto=tcp",
      "action=drop dst4=198.51.100.2/32",
      "action=accept proto=udp",
      "action=drop proto=udp dstports=5000-5000",
    ],
    probes: [
      [tcp(SERVER2, 80), OK],
      [udp(SERVER2, 5000), NO],
      [udp(SERVER, 5000), OK],
      [icmp(SERVER2, 8), NO],
      [tcp(FAR, 80), NO],
    ],
  },
  {
    name: "a long run entered through the union of its networks blocks exactly its boxes",
    rules: [
      "action=drop dst4=198.51.100.2/32 proto=tcp dstports=80-80",
      "action=drop dst4=203.0.113.0/24 proto=udp",
      "action=drop dst4=10.139.1.0/24",
      "action=accept",
    ],
    probes: [
      [tcp(SERVER2, 80), NO],
      [tcp(SERVER2, 22), OK],
      [udp(FAR, 5000), NO],
      [tcp(FAR, 80), OK],
      [udp(DNS1, 53), NO],
      [tcp(SERVER, 80), OK],
    ],
  },
  {
    name: "proto=icmp icmptype=8 allows echo requests, not timestamp requests",
    rules: ["action=accept proto=icmp icmptype=8"],
    probes: [
      [icmp(SERVER, 8), OK],
      [icmp(SERVER, 13), NO],
      [tcp(SERVER, 80), NO],
    ],
  },
  {
    name: "proto=icmp allows every ICMP type",
    rules: ["action=accept proto=icmp"],
    probes: [
      [icmp(FAR, 8), OK],
      [icmp(FAR, 13), OK],
      [udp(FAR, 5000), NO],
    ],
  },
  {
    name: "specialtarget=dns allows TCP and UDP 53 to the virtual DNS addresses only",
    rules: ["action=accept specialtarget=dns"],
    probes: [
      [udp(DNS1, 53), OK],
      [tcp(DNS2, 53), OK],
      [tcp(DNS1, 80), NO],
      [udp(SERVER, 53), NO],
    ],
  },
  {
    name: "dsthost allows the resolved addresses",
    rules: ["action=accept dsthost=far.example proto=tcp"],
    resolved: { "far.example": [`${FAR}/32`] },
    probes: [
      [tcp(FAR, 80), OK],
      [tcp(SERVER, 80), NO],
    ],
  },
  {
    name: "an accept rule whose name did not resolve matches nothing",
    rules: ["action=accept dsthost=gone.example", "action=accept proto=udp"],
    probes: [
      [tcp(FAR, 80), NO],
      [udp(FAR, 5000), OK],
    ],
  },
  {
    name: "a drop rule whose name did not resolve blocks the VM",
    rules: ["action=drop dsthost=gone.example", "action=accept"],
    probes: [
      [udp(FAR, 5000), NO],
      [tcp(SERVER, 80), NO],
    ],
  },
  {
    name: "IPv6 rules come from their own set: dst6, ICMPv6 type and the policy",
    rules: ["action=accept"],
    rules6: ["action=accept dst6=2001:db8:2::/64 proto=tcp", "action=accept proto=icmp icmptype=128"],
    probes: [
      [tcp(FAR6, 80, VM6), OK],
      [tcp(SERVER6, 80, VM6), NO],
      [udp(FAR6, 5000, VM6), NO],
      [icmp(SERVER6, 128, VM6), OK],
    ],
  },
];

t.test("compiled rules enforce each option on real traffic", { skip: netnsSkipReason() }, async (t) => {
  const topo = await createTopology(t);
  const apply = async (c: Case) => {
    const resolved = new Map(Object.entries(c.resolved ?? {}));
    const v4: VmInput[] = [
      { address: VM1, rules: c.rules.map(parseQubesDbRule), resolved },
      { address: VM2, rules: [parseQubesDbRule("action=accept")], resolved: new Map() },
    ];
    const v6: VmInput[] = [
      { address: VM6, rules: (c.rules6 ?? ["action=accept"]).map(parseQubesDbRule), resolved: new Map() },
    ];
    await applyNftScript(compileFullScript(4, v4).script + compileFullScript(6, v6).script, {
      netns: topo.router,
    });
  };
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      await apply(c);
      const results = await probe(
        topo.client,
        c.probes.map(([p]) => p),
      );
      t.same(
        results,
        c.probes.map(([, expected]) => expected),
      );
      // the other VM is untouched by VM1's rules
      t.same(await probe(topo.client, [tcp(FAR, 80, VM2)]), [OK], "VM2 still reaches everything");
    });
  }

  await t.test("a VM without rules is blocked (fail closed)", async (t) => {
    t.same(await probe(topo.client, [tcp(SERVER, 80, VM3), udp(SERVER, 5000, VM3), icmp(SERVER, 8, VM3)]), [
      NO,
      NO,
      NO,
    ]);
  });

  await t.test("ping sees the reject as administratively prohibited (Packet filtered)", async (t) => {
    await apply({ name: "", rules: ["action=drop proto=icmp", "action=accept"], probes: [] });
    const result = await inNetns(topo.client, "ping", ["-c", "1", "-W", "2", "-I", VM1, SERVER], {
      reject: false,
    });
    t.not(result.exitCode, 0);
    t.match(String(result.stdout), /Packet filtered/);
  });
});

/**
 * The compiler, without a kernel: exact scripts for fixed inputs (snapshot
 * files, regenerate with UPDATE_SNAPSHOTS=1 and review the diff), and the
 * properties the ruleset's speed and correctness rest on.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import {
  compileFullScript,
  compileRemovalScript,
  compileVm,
  compileVmScript,
  type VmInput,
} from "../../../proxyvm/firewall/compile.js";
import { parseQubesDbRule } from "../../../shared/firewall/index.js";

const SNAPSHOTS = join(dirname(fileURLToPath(import.meta.url)), "snapshots");

function vm(address: string, rules: string[], resolved: Record<string, string[]> = {}): VmInput {
  return { address, rules: rules.map(parseQubesDbRule), resolved: new Map(Object.entries(resolved)) };
}

const MIXED = vm(
  "10.137.0.12",
  [
    "action=accept proto=tcp dstports=443-443",
    "action=accept dst4=192.0.2.0/24 proto=tcp dstports=80-90",
    "action=accept specialtarget=dns",
    "action=drop proto=icmp icmptype=8",
    "action=accept proto=icmp",
    "action=drop dsthost=example.com",
    "action=accept dst4=10.0.0.0/8",
    "action=accept dst4=10.1.0.0/16 proto=udp",
  ],
  { "example.com": ["192.0.2.7/32", "192.0.2.8/32"] },
);
const MIXED6 = vm("fd09:24ef:4179::a89:c", [
  "action=accept dst6=2001:db8::/32 proto=tcp dstports=22-22",
  "action=accept proto=icmp icmptype=128",
  "action=accept specialtarget=dns",
  "action=drop proto=icmp icmptype=1",
  "action=accept",
]);

/** The recorded script of `name` (written first when missing or UPDATE_SNAPSHOTS=1). */
function snapshot(name: string, text: string): string {
  const file = join(SNAPSHOTS, `${name}.nft`);
  if (process.env["UPDATE_SNAPSHOTS"] === "1" || !existsSync(file)) writeFileSync(file, text);
  return readFileSync(file, "utf8");
}

t.test("fixed inputs compile to the recorded scripts", async (t) => {
  const check = (name: string, text: string) => t.equal(text, snapshot(name, text), `${name}.nft`);
  check("full-ipv4", compileFullScript(4, [MIXED, { address: "10.137.0.13", blocked: "bad rule" }]).script);
  check("full-ipv6", compileFullScript(6, [MIXED6]).script);
  check("full-empty", compileFullScript(4, [], { clientInterfaces: "vif*" }).script);
  check("update-ipv4", compileVmScript(4, MIXED).script);
  check("remove-ipv6", compileRemovalScript(6, "fd09:24ef:4179::a89:c"));
});

t.test("the output does not depend on the order of the VMs", async (t) => {
  const a = vm("10.137.0.2", ["action=accept"]);
  const b = vm("10.137.0.10", ["action=drop"]);
  t.equal(compileFullScript(4, [a, b]).script, compileFullScript(4, [b, a]).script);
});

/** A VM's chains with each named set written in place as its elements (`@s-… ` → `{ … } `). */
function inlineSets(compiled: { chains: string; sets: ReadonlyMap<string, string> }): string {
  return compiled.chains.replace(/@(s-[0-9a-f]{16})/g, (_, name: string) => {
    const declaration = compiled.sets.get(name) ?? "";
    return declaration.slice(declaration.indexOf("elements = ") + "elements = ".length, -2);
  });
}

/** The rule lines of one of a VM's chains, generation stamps removed, sets written in place. */
function chainLines(input: VmInput, prefix: "vm" | "rpl"): string[] {
  const text = inlineSets(compileVm(4, input));
  const start = text.indexOf(`\tchain ${prefix}-`);
  const body = text.slice(text.indexOf("{\n", start) + 2, text.indexOf("\n\t}", start));
  return body.split("\n").map((l) => l.trim().replace(/ct mark set 0x[0-9a-f]{8} /, ""));
}

t.test("a run of same-action rules becomes one lookup per shape", async (t) => {
  const input = vm("10.137.0.12", [
    "action=accept proto=tcp dstports=80-80",
    "action=accept proto=tcp dstports=443-443",
    "action=accept dst4=192.0.2.1/32 proto=udp dstports=53-53",
  ]);
  t.same(chainLines(input, "vm"), [
    "ip daddr . meta l4proto . th dport { 0.0.0.0/0 . tcp . 80, 0.0.0.0/0 . tcp . 443, 192.0.2.1 . udp . 53 } accept",
    "reject with icmp type admin-prohibited",
  ]);
  t.same(chainLines(input, "rpl"), [
    "ip saddr . meta l4proto . th sport { 0.0.0.0/0 . tcp . 80, 0.0.0.0/0 . tcp . 443, 192.0.2.1 . udp . 53 } accept",
    "drop",
  ]);
});

t.test("alternating actions keep their order as separate lookups", async (t) => {
  const input = vm("10.137.0.12", [
    "action=drop dst4=192.0.2.1/32",
    "action=accept dst4=192.0.2.0/24",
    "action=drop",
  ]);
  // one element needs no set: a plain match costs the packet the same and the kernel far less
  t.same(chainLines(input, "vm"), [
    "ip daddr 192.0.2.1 reject with icmp type admin-prohibited",
    "ip daddr 192.0.2.0/24 accept",
    "reject with icmp type admin-prohibited",
    "reject with icmp type admin-prohibited",
  ]);
});

t.test("overlapping boxes of one run go to separate lookups, duplicates vanish", async (t) => {
  const input = vm("10.137.0.12", [
    "action=accept dst4=10.0.0.0/8 proto=tcp dstports=1-100",
    "action=accept dst4=10.1.0.0/16 proto=tcp dstports=50-60",
    "action=accept dst4=10.0.0.0/8 proto=tcp dstports=1-100",
    "action=accept dst4=10.1.0.0/16 proto=tcp dstports=200-300",
  ]);
  t.same(chainLines(input, "vm"), [
    "ip daddr { 10.0.0.0/8, 10.1.0.0/16 } jump {",
    "ip daddr . meta l4proto . th dport { 10.0.0.0/8 . tcp . 1-100, 10.1.0.0/16 . tcp . 200-300 } accept",
    "ip daddr 10.1.0.0/16 meta l4proto tcp th dport 50-60 accept",
    "}",
    "reject with icmp type admin-prohibited",
  ]);
});

t.test("a run of several lookups is entered only through the union of its networks", async (t) => {
  const input = vm("10.137.0.12", [
    "action=drop dst4=192.0.2.1/32 proto=tcp dstports=22-22",
    "action=drop dst4=203.0.113.0/24 proto=udp",
    "action=drop dst4=10.0.0.0/8",
    "action=accept",
  ]);
  t.same(chainLines(input, "vm"), [
    "ip daddr { 10.0.0.0/8, 203.0.113.0/24, 192.0.2.1 } jump {",
    "ip daddr 10.0.0.0/8 reject with icmp type admin-prohibited",
    "ip daddr 203.0.113.0/24 meta l4proto udp reject with icmp type admin-prohibited",
    "ip daddr 192.0.2.1 meta l4proto tcp th dport 22 reject with icmp type admin-prohibited",
    "}",
    "accept",
    "reject with icmp type admin-prohibited",
  ]);
  const anyDestination = vm("10.137.0.12", [
    "action=drop dst4=10.0.0.0/8",
    "action=drop proto=udp",
    "action=accept",
  ]);
  t.notMatch(
    chainLines(anyDestination, "vm").join("\n"),
    /jump/,
    "a run with an any-destination rule has no entry filter",
  );
});

t.test(
  "a drop rule whose name did not resolve blocks the VM; an accept rule just matches nothing",
  async (t) => {
    const dropped = compileVm(4, vm("10.137.0.12", ["action=accept", "action=drop dsthost=gone.example"]));
    t.equal(dropped.blocked, 'drop rule 2 names "gone.example", which did not resolve');
    t.equal(dropped.generation, undefined);
    t.match(dropped.chains, /chain vm-10\.137\.0\.12 \{\n\t\treject with icmp type admin-prohibited\n\t\}/);
    t.notMatch(dropped.chains, /ct mark/, "a blocked VM has no fast path");
    const accepted = compileVm(
      4,
      vm("10.137.0.12", ["action=accept dsthost=gone.example", "action=accept proto=udp"]),
    );
    t.equal(accepted.blocked, undefined);
    t.same(
      chainLines(vm("10.137.0.12", ["action=accept dsthost=gone.example", "action=accept proto=udp"]), "vm"),
      ["meta l4proto udp accept", "reject with icmp type admin-prohibited"],
      "only the udp rule remains",
    );
  },
);

t.test("the generation follows the rules, not the moment", async (t) => {
  const one = compileVm(4, vm("10.137.0.12", ["action=accept proto=tcp"]));
  const again = compileVm(4, vm("10.137.0.12", ["action=accept proto=tcp"]));
  const other = compileVm(4, vm("10.137.0.12", ["action=accept proto=udp"]));
  t.equal(one.generation, again.generation);
  t.not(one.generation, other.generation);
  t.not(one.generation, 0);
});

t.test("specialtarget=dns matches nothing in the IPv6 table (Qubes has no IPv6 virtual DNS)", async (t) => {
  const compiled = compileVm(6, vm("fd09::1", ["action=accept specialtarget=dns"]));
  t.notMatch(compiled.chains, /53/);
});

t.test("an ICMP type conntrack does not track has no reply-direction element", async (t) => {
  const compiled = compileVm(
    4,
    vm("10.137.0.12", ["action=accept proto=icmp icmptype=3", "action=accept proto=icmp icmptype=8"]),
  );
  t.match(inlineSets(compiled), /ip daddr \. icmp type \{ 0\.0\.0\.0\/0 \. 3, 0\.0\.0\.0\/0 \. 8 \}/);
  t.match(compiled.chains, /\t\ticmp type 0 ct mark set/, "only echo (8) has a reply type (0)");
});

t.test("lookups are named sets, one per content, shared by both directions and by VMs", async (t) => {
  const rules = [
    "action=accept dst4=192.0.2.0/24 proto=tcp dstports=80-90",
    "action=accept proto=tcp dstports=443-443",
  ];
  const a = compileVm(4, vm("10.137.0.2", rules));
  const b = compileVm(4, vm("10.137.0.3", rules));
  t.same(
    [...a.sets.values()],
    [
      "\tset s-3cac740b82139b28 { type ipv4_addr . inet_proto . inet_service; flags interval; elements = { 192.0.2.0/24 . tcp . 80-90, 0.0.0.0/0 . tcp . 443 } }",
    ],
  );
  t.match(a.chains, /ip daddr \. meta l4proto \. th dport @s-3cac740b82139b28 ct mark set/);
  t.match(a.chains, /ip saddr \. meta l4proto \. th sport @s-3cac740b82139b28 ct mark set/);
  t.same([...b.sets.keys()], [...a.sets.keys()]);
  const full = compileFullScript(4, [vm("10.137.0.2", rules), vm("10.137.0.3", rules)]).script;
  t.equal(full.split("\tset s-3cac740b82139b28 ").length - 1, 1, "declared once in the table");
  // no anonymous set in any rule: each would cost the kernel a walk of the whole transaction
  t.notMatch(full, /(daddr|saddr|dport|sport|type) \{/);
});

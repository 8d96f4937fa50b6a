/**
 * Firewall benchmark (issue 6), in fresh network namespaces of its own:
 *
 * 1. full apply: 1, 50 and 200 VMs × 50 mixed rules, compiled and applied as
 *    one transaction (reference: the Qubes service takes 11.1 s for 200 × 50);
 * 2. one-VM update: from the write of `/qubes-firewall/N` to the end of the
 *    nft transaction that makes the rules live, through a real QubesDB daemon
 *    and the firewall component (reference: 31–36 ms);
 * 3. per-packet cost where rules are walked, i.e. the first packet of each new
 *    flow: new TCP connections/s and new UDP flows/s from a VM with 1 rule vs
 *    a VM with 10,000 rules whose match is the last, through a router
 *    namespace; a linear chain of the same 10,000 rules (the reference's
 *    shape) is measured too, for contrast.
 *
 *   node dist/scripts/bench/firewall.js [--seconds 2] [--rounds 3]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { createNftApplier } from "../../proxyvm/firewall/apply.js";
import { compileFullScript, type VmInput } from "../../proxyvm/firewall/compile.js";
import { createFirewallComponent } from "../../proxyvm/firewall/component.js";
import { applyNftScript } from "../../proxyvm/system/nft.js";
import { type FirewallRule, formatQubesDbRule, parseQubesDbRule } from "../../shared/firewall/index.js";
import { firewallRulesPrefix, firewallSignalKey } from "../../shared/keys.js";
import { silentLogger } from "../../shared/log.js";
import { connectQubesDb } from "../../shared/qubesdb/client.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const REFERENCE_FULL_S = 11.1;
const REFERENCE_UPDATE_MS = [31, 36] as const;

const suffix = `${(process.pid % 1296).toString(36)}${randomBytes(2).toString("hex")}`;
const created: string[] = [];

async function makeNetns(prefix: string): Promise<string> {
  const name = `${prefix}${suffix}`;
  await execa("ip", ["netns", "add", name]);
  created.push(name);
  await execa("ip", ["-n", name, "link", "set", "lo", "up"]);
  return name;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

/** 50 mixed rules, deterministic per VM: addresses, networks, ports, ranges, ICMP, DNS, a final drop. */
function mixedRules(vm: number, variant = 0): FirewallRule[] {
  const texts: string[] = ["action=accept specialtarget=dns"];
  for (let i = 0; texts.length < 49; i++) {
    const octet = (vm * 7 + i + variant) % 250;
    switch (i % 6) {
      case 0:
        texts.push(`action=accept dst4=192.0.2.${octet}/32 proto=tcp dstports=443-443`);
        break;
      case 1:
        texts.push(`action=drop dst4=198.51.${octet}.0/24 proto=udp dstports=1000-2000`);
        break;
      case 2:
        texts.push(`action=accept dst4=203.0.${octet}.0/24`);
        break;
      case 3:
        texts.push(`action=accept proto=tcp dstports=${8000 + octet}-${8000 + octet}`);
        break;
      case 4:
        texts.push(`action=accept proto=icmp icmptype=${octet % 20}`);
        break;
      default:
        texts.push(`action=drop dst4=10.${octet}.0.0/16 proto=tcp`);
    }
  }
  texts.push("action=drop");
  return texts.map(parseQubesDbRule);
}

function vmAddress(i: number): string {
  return `10.137.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}

interface FullApply {
  compileMs: number;
  applyMs: number;
  /** user + sys CPU of the nft process (the kernel's transaction runs in its sendmsg): what load does not inflate */
  nftCpuMs: number;
}

/** CPU time (user + sys) of one `nft -f -` run in `ns`, read from GNU time. */
async function nftCpuMs(ns: string, script: string): Promise<number> {
  const result = await execa(
    "nsenter",
    [`--net=/run/netns/${ns}`, "/usr/bin/time", "-f", "cpu %U %S", "nft", "-f", "-"],
    {
      input: script,
    },
  );
  const match = /cpu ([0-9.]+) ([0-9.]+)/.exec(String(result.stderr));
  return match === null ? Number.NaN : (Number(match[1]) + Number(match[2])) * 1000;
}

async function benchFullApply(rounds: number): Promise<Map<number, FullApply>> {
  const ns = await makeNetns("fwba");
  const results = new Map<number, FullApply>();
  for (const count of [1, 50, 200]) {
    const vms: VmInput[] = Array.from({ length: count }, (_, i) => ({
      address: vmAddress(i),
      rules: mixedRules(i),
      resolved: new Map(),
    }));
    const compiles: number[] = [];
    const applies: number[] = [];
    const cpu: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      const script = compileFullScript(4, vms).script + compileFullScript(6, []).script;
      const t1 = performance.now();
      await applyNftScript(script, { netns: ns });
      const t2 = performance.now();
      compiles.push(t1 - t0);
      applies.push(t2 - t1);
      cpu.push(await nftCpuMs(ns, script));
    }
    results.set(count, { compileMs: median(compiles), applyMs: median(applies), nftCpuMs: median(cpu) });
  }
  return results;
}

async function startDaemon(dir: string): Promise<{ child: ChildProcess; socket: string }> {
  const socket = join(dir, "qubesdb.sock");
  const child = spawn(
    process.execPath,
    [join(ROOT, "dist/shared/qubesdb/cli/qubesdb-daemon.js"), "--socket", socket],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, NOTIFY_SOCKET: "" },
    },
  );
  for (let i = 0; i < 200; i++) {
    try {
      const probe = await connectQubesDb({ socket, reconnect: false });
      await probe.close();
      return { child, socket };
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`Cannot start qubesdb-daemon on "${socket}"`);
}

/**
 * Signal write → end of the nft transaction, for one VM among 200 × 50. Runs
 * inside the namespace (a child process started with nsenter), so nft is
 * spawned as the agent spawns it in a ProxyVM, without an nsenter in front.
 */
async function benchUpdate(updates: number): Promise<Array<[number, number]>> {
  const dir = mkdtempSync(join(tmpdir(), `fwbench-${process.pid}-`));
  const { child, socket } = await startDaemon(dir);
  const db = await connectQubesDb({ socket, reconnect: false });
  const events = await connectQubesDb({ socket, reconnect: false });
  let appliedAt = 0;
  let startedAt = 0;
  let onApplied: (() => void) | undefined;
  // the agent's own applier (a long-lived nft session for small scripts), timed around
  const nft = createNftApplier();
  const component = createFirewallComponent(
    { qubesdb: db, log: silentLogger, now: () => Date.now() },
    {
      applier: {
        apply: async (script) => {
          startedAt = performance.now();
          await nft.apply(script);
          appliedAt = performance.now();
          onApplied?.();
        },
        close: () => nft.close?.(),
      },
      lookup: async () => [],
    },
  );
  try {
    const publishBelow = async (n: string, rules: FirewallRule[]) => {
      await db.rm(firewallRulesPrefix(n));
      await db.write(`${firewallRulesPrefix(n)}policy`, "drop");
      for (const [i, rule] of rules.entries()) {
        await db.write(`${firewallRulesPrefix(n)}${String(i).padStart(4, "0")}`, formatQubesDbRule(rule));
      }
    };
    for (let i = 0; i < 200; i++) {
      await publishBelow(vmAddress(i), mixedRules(i));
      await db.write(firewallSignalKey(vmAddress(i)), "");
    }
    for (const path of component.watches) await events.watch(path);
    await component.syncAll?.(await component.listKeys());
    void (async () => {
      for await (const path of events.events()) {
        for (const key of component.keysForEvent(path)) await component.sync(key).catch(() => undefined);
      }
    })().catch(() => undefined);
    const target = vmAddress(100);
    /** [signal → rules live, of which the nft run] */
    const samples: Array<[number, number]> = [];
    for (let u = 0; u < updates; u++) {
      await publishBelow(target, mixedRules(100, u + 1));
      const applied = new Promise<void>((r) => {
        onApplied = r;
      });
      const t0 = performance.now();
      await db.write(firewallSignalKey(target), "");
      await applied;
      samples.push([appliedAt - t0, appliedAt - startedAt]);
      onApplied = undefined;
      await new Promise((r) => setTimeout(r, 20)); // let the reports of this attempt finish
    }
    return samples;
  } finally {
    component.close();
    await events.close();
    await db.close();
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- per-packet cost: real flows through a router namespace --------------------------------------

const VM_ONE = "10.137.0.2";
const VM_MANY = "10.137.0.3";
const VM_LINEAR = "10.137.0.4";
const SERVER = "198.51.100.1";

/** Accepts and closes TCP connections on port 80 (the kernel does the handshake; we only keep the queue empty). */
const TCP_SERVER_PY = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("${SERVER}", 80)); s.listen(4096); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
`;

/** argv: kind src seconds → prints the number of connections made / datagrams sent. */
const CLIENT_PY = `
import socket, struct, sys, time
kind, src, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + seconds; n = 0
if kind == "tcp":
    linger = struct.pack("ii", 1, 0)
    while time.time() < end:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.bind((src, 0)); s.connect(("${SERVER}", 80)); s.close(); n += 1
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0))
    while time.time() < end:
        for port in range(20000, 30000, 1):
            s.sendto(b"x", ("${SERVER}", port)); n += 1
            if n % 512 == 0 and time.time() >= end: break
print(n)
`;

/** 9,999 rules that never match the benchmark's flows (three shapes), then the one that does. */
function manyRules(): FirewallRule[] {
  const texts: string[] = [];
  for (let i = 0; i < 9999; i++) {
    const a = Math.floor(i / 250) % 250;
    const b = (i % 250) + 1;
    if (i % 3 === 0)
      texts.push(
        `action=drop dst4=192.0.${a}.${b}/32 proto=tcp dstports=${1 + (i % 60000)}-${1 + (i % 60000)}`,
      );
    else if (i % 3 === 1) texts.push(`action=drop dst4=203.${a}.${b}.0/24 proto=udp`);
    else texts.push(`action=drop dst4=10.${a}.${b}.0/24`);
  }
  texts.push(`action=accept dst4=${SERVER}/32`);
  return texts.map(parseQubesDbRule);
}

/** The reference's shape: one nft rule per firewall rule, walked in order. */
function linearScript(rules: readonly FirewallRule[]): string {
  const lines = rules.map((rule) => {
    const parts: string[] = [];
    if (rule.dst4 !== undefined) parts.push(`ip daddr ${rule.dst4}`);
    if (rule.proto !== undefined) parts.push(`meta l4proto ${rule.proto}`);
    if (rule.dstports !== undefined) parts.push(`th dport ${rule.dstports.from}-${rule.dstports.to}`);
    parts.push(rule.action === "accept" ? "accept" : "reject with icmp type admin-prohibited");
    return `\t\t${parts.join(" ")}`;
  });
  return [
    "table ip fwbench-linear {",
    "\tchain linear {",
    ...lines,
    "\t\treject with icmp type admin-prohibited",
    "\t}",
    "\tchain forward {",
    "\t\ttype filter hook forward priority filter + 1; policy accept;",
    "\t\tct state established,related accept",
    `\t\tip saddr ${VM_LINEAR} jump linear`,
    "\t}",
    "}",
    "",
  ].join("\n");
}

interface PacketRates {
  tcp: { one: number; many: number; linear: number };
  udp: { one: number; many: number; linear: number };
}

async function measurePacketRates(seconds: number, rounds: number): Promise<PacketRates> {
  const client = await makeNetns("fwbc");
  const router = await makeNetns("fwbr");
  const server = await makeNetns("fwbs");
  const ip = (ns: string, ...args: string[]) => execa("ip", ["-n", ns, ...args]);
  await ip(client, "link", "add", "eth0", "type", "veth", "peer", "name", "vif1.0", "netns", router);
  await ip(router, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", server);
  for (const [ns, dev] of [
    [client, "eth0"],
    [router, "vif1.0"],
    [router, "up0"],
    [server, "eth0"],
  ] as const) {
    await ip(ns, "link", "set", dev, "up");
  }
  for (const vm of [VM_ONE, VM_MANY, VM_LINEAR]) await ip(client, "addr", "add", `${vm}/24`, "dev", "eth0");
  await ip(client, "route", "add", "default", "via", "10.137.0.1");
  await ip(router, "addr", "add", "10.137.0.1/24", "dev", "vif1.0");
  await ip(router, "addr", "add", "198.51.100.254/24", "dev", "up0");
  await ip(server, "addr", "add", `${SERVER}/24`, "dev", "eth0");
  await ip(server, "route", "add", "default", "via", "198.51.100.254");
  const inNs = (ns: string, file: string, args: string[]) =>
    execa("nsenter", [`--net=/run/netns/${ns}`, file, ...args]);
  await inNs(router, "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  const many = manyRules();
  const vms: VmInput[] = [
    { address: VM_ONE, rules: [parseQubesDbRule(`action=accept dst4=${SERVER}/32`)], resolved: new Map() },
    { address: VM_MANY, rules: many, resolved: new Map() },
    { address: VM_LINEAR, rules: [parseQubesDbRule("action=accept")], resolved: new Map() },
  ];
  await applyNftScript(compileFullScript(4, vms).script + linearScript(many), { netns: router });
  // the server counts UDP first packets and drops them (no port-unreachable storm back)
  await applyNftScript(
    "table ip fwbench-sink {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tudp dport 20000-29999 counter drop\n\t}\n}\n",
    { netns: server },
  );
  const tcpServer = spawn("nsenter", [`--net=/run/netns/${server}`, "python3", "-c", TCP_SERVER_PY], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((r) => tcpServer.stdout?.once("data", () => r()));
    const sinkCount = async () => {
      const { stdout } = await inNs(server, "nft", ["list", "table", "ip", "fwbench-sink"]);
      return Number(/packets (\d+)/.exec(String(stdout))?.[1] ?? 0);
    };
    const samples = {
      tcp: { one: [] as number[], many: [] as number[], linear: [] as number[] },
      udp: { one: [] as number[], many: [] as number[], linear: [] as number[] },
    };
    const sources = { one: VM_ONE, many: VM_MANY, linear: VM_LINEAR } as const;
    for (let round = 0; round < rounds; round++) {
      for (const kind of ["tcp", "udp"] as const) {
        for (const which of ["one", "many", "linear"] as const) {
          await inNs(router, "conntrack", ["-F"]).catch(() => undefined);
          const before = kind === "udp" ? await sinkCount() : 0;
          const { stdout } = await inNs(client, "python3", [
            "-c",
            CLIENT_PY,
            kind,
            sources[which],
            String(seconds),
          ]);
          const count = kind === "tcp" ? Number(String(stdout).trim()) : (await sinkCount()) - before;
          samples[kind][which].push(count / seconds);
        }
      }
    }
    const pick = (k: "tcp" | "udp") => ({
      one: median(samples[k].one),
      many: median(samples[k].many),
      linear: median(samples[k].linear),
    });
    return { tcp: pick("tcp"), udp: pick("udp") };
  } finally {
    tcpServer.kill("SIGKILL");
  }
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

async function benchUpdateInNetns(updates: number): Promise<Array<[number, number]>> {
  const ns = await makeNetns("fwbu");
  const { stdout } = await execa("nsenter", [
    `--net=/run/netns/${ns}`,
    process.execPath,
    fileURLToPath(import.meta.url),
    "--update-child",
    String(updates),
  ]);
  return JSON.parse(String(stdout).trim().split("\n").at(-1) ?? "[]") as Array<[number, number]>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "2" },
      rounds: { type: "string", default: "3" },
      "update-child": { type: "string" },
    },
  });
  if (values["update-child"] !== undefined) {
    console.log(JSON.stringify(await benchUpdate(Number(values["update-child"]))));
    return;
  }
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  try {
    console.log("firewall benchmark (figures are medians; references from the Qubes qubes-firewall service)");
    console.log(
      `machine: ${cpus().length} CPUs, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    const full = await benchFullApply(5);
    for (const [count, r] of full) {
      const total = r.compileMs + r.applyMs;
      console.log(
        `full apply ${String(count).padStart(3)} VMs × 50 rules: ${fmt(total)} ms (compile ${fmt(r.compileMs)} ms + nft ${fmt(r.applyMs)} ms wall, ${fmt(r.nftCpuMs, 0)} ms CPU)` +
          (count === 200
            ? `  reference ${REFERENCE_FULL_S} s → ${fmt((REFERENCE_FULL_S * 1000) / total)}× faster by wall time, ` +
              `${fmt((REFERENCE_FULL_S * 1000) / (r.compileMs + r.nftCpuMs))}× by compile + nft CPU (goal ≥ 20×, ≤ 555 ms)`
            : ""),
      );
    }
    const samples = await benchUpdateInNetns(30);
    const updates = samples.map(([total]) => total);
    const med = median(updates);
    console.log(
      `one-VM update (signal write → rules live, 200 × 50 loaded): median ${fmt(med)} ms (of which the nft run ${fmt(median(samples.map(([, nft]) => nft)))} ms), p90 ${fmt(percentile(updates, 0.9))} ms` +
        `  reference ${REFERENCE_UPDATE_MS[0]}–${REFERENCE_UPDATE_MS[1]} ms → ${fmt(REFERENCE_UPDATE_MS[0] / med)}× faster (goal ≤ 12 ms)`,
    );
    const rates = await measurePacketRates(seconds, rounds);
    const line = (label: string, one: number, many: number, linear: number) =>
      console.log(
        `${label}: 1 rule ${fmt(one, 0)}/s, 10,000 rules ${fmt(many, 0)}/s (${fmt(many / one, 2)}×, goal ≥ 0.8×), ` +
          `linear 10,000-rule chain ${fmt(linear, 0)}/s (${fmt(linear / one, 2)}×)`,
      );
    line("new TCP connections", rates.tcp.one, rates.tcp.many, rates.tcp.linear);
    line("new UDP flows (first packets)", rates.udp.one, rates.udp.many, rates.udp.linear);
  } finally {
    for (const ns of created) await execa("ip", ["netns", "del", ns], { reject: false });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

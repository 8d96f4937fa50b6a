#!/usr/bin/env node
/**
 * Bench of the agent's vif bring-up and teardown (issue 5): 1, 50 and 200
 * fake-IP vifs in a fresh ProxyVM namespace, driven through the running
 * daemon's control socket exactly as the hook does (one vif at a time, each
 * waited for), next to the kernel floor measured in the same run: the time of
 * one `ip link set DEV netns NS` move of a fresh veth end, the one kernel
 * operation the design cannot avoid (the median of up to 18 moves: before the
 * bring-up, between vifs and after the teardown, as the machine drifts). Also the daemon's resident memory with
 * the most vifs. Run as root: `node dist/scripts/bench/vif.js [1,50,200] [--repeat N] [--sighup]`
 * (`--repeat`: N rounds of each size, each with a fresh agent, and their medians;
 * `--sighup`: also the time of a full resync (SIGHUP) with all vifs up).
 * Every namespace it makes is named uniquely and removed at the end.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { sendControlRequest } from "../../proxyvm/sources/control-socket.js";
import { connectQubesDb } from "../../shared/qubesdb/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const AGENT_JS = resolve(here, "../../proxyvm/cli/qubes-fakeip-agent.js");
const DAEMON_JS = resolve(here, "../../shared/qubesdb/cli/qubesdb-daemon.js");
/** floor samples before the bring-up and after the teardown; more are taken between vifs (see `round`) */
const FLOOR_SAMPLES = 4;
/** at most this many floor samples interleaved with the bring-up */
const FLOOR_DURING = 10;

const tag = `${(process.pid % 1296).toString(36)}${randomBytes(2).toString("hex")}`;
const made: string[] = [];

async function netns(name: string): Promise<string> {
  await execa("ip", ["netns", "add", name]);
  made.push(name);
  return name;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** One floor sample: the move of a fresh veth end from `proxy` to `target`, as one `ip` command. */
async function floorSample(proxy: string, target: string): Promise<number> {
  await execa("ip", ["-n", proxy, "link", "add", "fla", "type", "veth", "peer", "name", "flb"]);
  const start = performance.now();
  await execa("nsenter", [`--net=/run/netns/${proxy}`, "ip", "link", "set", "dev", "flb", "netns", target]);
  const ms = performance.now() - start;
  await execa("ip", ["-n", target, "link", "del", "flb"]);
  return ms;
}

async function measureFloor(proxy: string, target: string, samples: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < samples; i++) ms.push(await floorSample(proxy, target));
  return ms;
}

/** Resolves when the agent's log shows `line` `times` times in all (the log is read as it comes). */
function waitLog(child: ChildProcess, line: string, times = 1): Promise<void> {
  return new Promise((ok, fail) => {
    let log = "";
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.split(line).length - 1 >= times) {
        child.stderr?.off("data", onData);
        ok();
      }
    };
    child.stderr?.on("data", onData);
    child.once("exit", () => fail(new Error(`Cannot run the agent: ${log}`)));
  });
}

async function connectWhenListening(socket: string) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await connectQubesDb({ socket, reconnect: false });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

interface Round {
  count: number;
  floorMs: number;
  upMs: number;
  downMs: number;
  rssKiB: number;
  /** `--sighup`: time from SIGHUP with all vifs up until the agent logged "resynced" */
  resyncMs?: number;
}

async function round(count: number, sighup: boolean): Promise<Round> {
  const proxy = await netns(`bpx${tag}`);
  const vms = await netns(`bvm${tag}`);
  const floorNs = await netns(`bfl${tag}`);
  const dir = mkdtempSync(join(tmpdir(), "bench-vif-"));
  const socket = join(dir, "qubesdb.sock");
  const db = spawn(process.execPath, [DAEMON_JS, "--socket", socket], { stdio: "ignore" });
  let agent: ChildProcess | undefined;
  const base = randomInt(100, 32752 - count);
  const vifs = Array.from({ length: count }, (_, i) => ({
    vif: `vif${base + i}.0`,
    ip: `10.137.${Math.floor((i + 2) / 250)}.${((i + 2) % 250) + 2}`,
  }));
  try {
    // set-up, not measured: Xen's vifs (peers in one namespace standing for the VMs) and dom0's keys
    const lines = vifs.map(
      (v, i) =>
        `link add ${v.vif} address fe:ff:ff:ff:ff:ff type veth peer name vm${i} netns ${vms} address 00:16:3e:5e:6c:00`,
    );
    await execa("ip", ["-n", proxy, "-batch", "-"], { input: `${lines.join("\n")}\n` });
    await new Promise((r) => setTimeout(r, 200));
    const client = await connectWhenListening(socket);
    await client.write("/qubes-netvm-gateway", "10.137.0.1");
    await client.write("/connected-ips", vifs.map((v) => v.ip).join(" "));
    for (const v of vifs) {
      await client.write(`/mapped-ip/${v.ip}/visible-ip`, "10.200.0.10");
      await client.write(`/mapped-ip/${v.ip}/visible-gateway`, "10.200.0.1");
    }
    await client.close();
    const control = join(dir, "agent.sock");
    agent = spawn(
      "nsenter",
      [
        `--net=/run/netns/${proxy}`,
        process.execPath,
        AGENT_JS,
        "--qubesdb-socket",
        socket,
        "--control-socket",
        control,
        "--state-dir",
        dir,
      ],
      { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, QUBES_FAKEIP_LOG: "info" } },
    );
    await waitLog(agent, "INFO ready");
    // The machine drifts: floor samples before, between the vifs (outside their
    // timing) and after, so the floor and the bring-up see the same machine.
    const floor = await measureFloor(proxy, floorNs, FLOOR_SAMPLES);
    // the bench's own client code path, untimed (a real hook is a fresh process each time anyway)
    await sendControlRequest(control, { type: "status" });
    const every = Math.max(1, Math.ceil(count / FLOOR_DURING));
    let upMs = 0;
    for (const [i, v] of vifs.entries()) {
      if (i % every === 0) floor.push(await floorSample(proxy, floorNs));
      const began = performance.now();
      const reply = await sendControlRequest(control, {
        type: "vif",
        command: "online",
        vif: v.vif,
        ip: v.ip,
      });
      upMs += performance.now() - began;
      if (reply?.ok !== true) throw new Error(`Cannot bring up ${v.vif}: ${reply?.error ?? "no daemon"}`);
    }
    let resyncMs: number | undefined;
    if (sighup) {
      const resynced = waitLog(agent, "INFO resynced");
      const began = performance.now();
      agent.kill("SIGHUP");
      await resynced;
      resyncMs = performance.now() - began;
    }
    const status = readFileSync(`/proc/${agent.pid}/status`, "utf8");
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);

    const start = performance.now();
    for (const v of vifs) {
      const reply = await sendControlRequest(control, {
        type: "vif",
        command: "offline",
        vif: v.vif,
        ip: v.ip,
      });
      if (reply?.ok !== true) throw new Error(`Cannot tear down ${v.vif}: ${reply?.error ?? "no daemon"}`);
    }
    const downMs = performance.now() - start;
    floor.push(...(await measureFloor(proxy, floorNs, FLOOR_SAMPLES)));
    const floorMs = median(floor);
    return resyncMs === undefined
      ? { count, floorMs, upMs, downMs, rssKiB }
      : { count, floorMs, upMs, downMs, rssKiB, resyncMs };
  } finally {
    agent?.kill("SIGKILL");
    db.kill("SIGKILL");
    for (const v of vifs) await execa("ip", ["netns", "del", `${v.vif}-nat`], { reject: false });
    for (const name of made.splice(0)) await execa("ip", ["netns", "del", name], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("Cannot run the vif bench: it needs root (network namespaces)");
  const args = process.argv.slice(2);
  const sighupAt = args.indexOf("--sighup");
  const sighup = sighupAt >= 0;
  if (sighup) args.splice(sighupAt, 1);
  const repeatAt = args.indexOf("--repeat");
  const repeat = repeatAt < 0 ? 1 : Number(args.splice(repeatAt, 2)[1]);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error("--repeat needs a whole number of rounds");
  const counts = (args[0] ?? "1,50,200").split(",").map(Number);
  const rows: string[] = [
    "| vifs | floor (1 move) | bring-up total | per vif | per vif / floor | teardown total | per vif | agent RSS |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  const summary: string[] = [];
  const f = (ms: number) => `${ms.toFixed(1)} ms`;
  for (const count of counts) {
    const ratios: number[] = [];
    const downs: number[] = [];
    for (let i = 0; i < repeat; i++) {
      const r = await round(count, sighup);
      ratios.push(r.upMs / count / r.floorMs);
      downs.push(r.downMs / count);
      rows.push(
        `| ${count} | ${f(r.floorMs)} | ${f(r.upMs)} | ${f(r.upMs / count)} | ${(r.upMs / count / r.floorMs).toFixed(2)} | ${f(r.downMs)} | ${f(r.downMs / count)} | ${(r.rssKiB / 1024).toFixed(1)} MiB |`,
      );
      if (r.resyncMs !== undefined) summary.push(`${count} vifs: SIGHUP resync ${f(r.resyncMs)}`);
      process.stderr.write(`${rows.at(-1)}\n`);
    }
    if (repeat > 1) {
      const range = (values: number[], digits: number) =>
        `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
      summary.push(
        `${count} vifs, ${repeat} rounds: per vif / floor median ${range(ratios, 2)}, teardown per vif median ${range(downs, 1)} ms`,
      );
    }
  }
  process.stdout.write(`${[...rows, "", ...summary].join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`vif bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

#!/usr/bin/env node
/**
 * Lab benchmark (root): time for `up` with 1, 20 and 100 clients and for
 * `down`, and the time from `qvm-features ... net.fake-ip` / `qvm-firewall
 * add` returning to the change showing in packets (median and max of 20).
 *
 *   node dist/scripts/bench/lab.js [--sizes 1,20,100] [--rounds 20]
 *
 * The reference, measured in the same run: one `nsenter` + Node start-up in a
 * lab namespace (what one probe step or one project command costs at least).
 */
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runDom0 } from "../lab/dom0.js";
import { down } from "../lab/down.js";
import { qvmFirewall } from "../lab/firewall.js";
import { netIn } from "../lab/net.js";
import { fakeClients } from "../lab/probes/context.js";
import { BLOCK_WEB, waitForOutcome } from "../lab/probes/firewall.js";
import { alternateIp } from "../lab/probes/live-change.js";
import { measureEffect } from "../lab/probes/measure.js";
import type { LabState } from "../lab/state.js";
import { ECHO_PORT, HTTP_PORT, SERVER_IP } from "../lab/topology.js";
import { up } from "../lab/up.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const sizes = arg("--sizes", "1,20,100").split(",").map(Number);
const rounds = Number(arg("--rounds", "20"));

function stats(values: readonly number[]): { median: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    n: sorted.length,
  };
}

async function timed<T>(action: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await action();
  return [value, performance.now() - started];
}

function labDir(): string {
  return join(tmpdir(), `qfl-bench-${process.pid}-${randomBytes(3).toString("hex")}`);
}

async function withLab<T>(
  clients: number,
  use: (state: LabState, upMs: number) => Promise<T>,
): Promise<{ value: T; downMs: number }> {
  const dir = labDir();
  try {
    const [state, upMs] = await timed(() =>
      up(
        { dir, clients, fakeIp: "10.152.152.11", fakeGateway: "10.152.152.10", fakeNetmask: "255.255.192.0" },
        () => {},
      ),
    );
    if (state.problems.length > 0)
      throw new Error(`Cannot benchmark: up had problems: ${state.problems.join("; ")}`);
    const value = await use(state, upMs);
    const [, downMs] = await timed(() => down(dir));
    return { value, downMs };
  } finally {
    await down(dir);
  }
}

/** One `nsenter node net-client.js` exchange: the floor under every packet-level measurement. */
async function reference(state: LabState): Promise<number> {
  const client = fakeClients(state)[0];
  if (client === undefined) throw new Error("Cannot measure the reference: no client");
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const [, ms] = await timed(() =>
      netIn(client.ns, [{ kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: "ref" }]),
    );
    times.push(ms);
  }
  return stats(times).median;
}

async function fakeIpLatency(state: LabState): Promise<number[]> {
  const client = fakeClients(state)[0];
  if (client === undefined) return [];
  const original = client.features["net.fake-ip"] ?? "";
  const results: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const next = i % 2 === 0 ? alternateIp(original) : original;
    const effect = await measureEffect(
      client.ns,
      { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: "bench", source: next },
      (r) => r.ok,
      () => runDom0(state, "qvm-features", ["--qubes-dir", state.qubesDir, client.name, "net.fake-ip", next]),
      { durationMs: 2000 },
    );
    if (effect.ms !== undefined) results.push(effect.ms);
  }
  if (rounds % 2 === 1)
    await runDom0(state, "qvm-features", [
      "--qubes-dir",
      state.qubesDir,
      client.name,
      "net.fake-ip",
      original,
    ]);
  return results;
}

async function firewallLatency(state: LabState): Promise<number[]> {
  const client = fakeClients(state)[0];
  if (client === undefined) return [];
  const results: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const effect = await measureEffect(
      client.ns,
      { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: "/bench", timeoutMs: 150 },
      (r) => !r.ok,
      () => qvmFirewall(state, client.name, ["add", "--before", "0", ...BLOCK_WEB]),
      { durationMs: 2000 },
    );
    if (effect.ms !== undefined) results.push(effect.ms);
    await qvmFirewall(state, client.name, ["reset"]);
    await waitForOutcome(client.ns, { echo: true, web: true });
  }
  return results;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("Cannot run the lab benchmark: it needs root");
  const line = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };
  let ref = Number.NaN;
  for (const size of sizes) {
    const { value, downMs } = await withLab(size, async (state, upMs) => {
      if (size === sizes[0]) {
        ref = await reference(state);
        line(`reference: one nsenter + node exchange in a client namespace: ${ref.toFixed(0)} ms`);
        const fake = stats(await fakeIpLatency(state));
        line(
          `qvm-features net.fake-ip → packets from the new IP flow: median ${fake.median} ms, max ${fake.max} ms (${fake.n} of ${rounds} rounds took effect within the 2 s window; ${(fake.median / ref).toFixed(2)}× ref)`,
        );
        const fw = stats(await firewallLatency(state));
        line(
          `qvm-firewall add → web blocked in packets: median ${fw.median} ms, max ${fw.max} ms (${fw.n} of ${rounds} rounds took effect within the 2 s window; ${(fw.median / ref).toFixed(2)}× ref)`,
        );
      }
      return upMs;
    });
    line(
      `up with ${size} fake-IP clients (+1 plain): ${(value / 1000).toFixed(1)} s (${(value / ref).toFixed(0)}× ref); down: ${(downMs / 1000).toFixed(1)} s (${(downMs / ref).toFixed(0)}× ref)`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
});

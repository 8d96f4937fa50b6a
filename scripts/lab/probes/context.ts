/** What every probe gets: the lab's state and small helpers around it. */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { describeError, NotFoundError } from "../../../shared/errors.js";
import type { LabState } from "../state.js";
import { netnsPath } from "../system.js";
import { clientsOf, type PlannedVm, vmOf } from "../topology.js";

export interface ProbeResult {
  readonly name: string;
  readonly ok: boolean;
  readonly observed: string;
  /** how long the probe took */
  readonly ms?: number;
}

export type Probe = (state: LabState) => Promise<ProbeResult>;

export function clients(state: LabState): PlannedVm[] {
  return clientsOf(state);
}

export function fakeClients(state: LabState): PlannedVm[] {
  return clientsOf(state).filter((v) => v.features["net.fake-ip"] !== undefined);
}

export function vm(state: LabState, name: string): PlannedVm {
  const found = state.vms.find((v) => v.name === name);
  if (found === undefined) throw new NotFoundError(`Cannot find VM "${name}" in the lab`);
  return found;
}

export function proxyNs(state: LabState): string {
  return vmOf(state, "proxyvm").ns;
}

/** The native IP dom0 assigned; throws a reason when the dom0 store never got built. */
export function nativeIp(state: LabState, name: string): string {
  const ip = state.nativeIps[name];
  if (ip === undefined)
    throw new NotFoundError(`Cannot tell the native IP of ${name}: the dom0 store was not built (see "up")`);
  return ip;
}

/** A unique text the test server logs, to find "what upstream saw" for one exchange. */
export function token(label: string): string {
  return `qfl-${label}-${randomBytes(4).toString("hex")}`;
}

/** Peers the test server logged for payloads containing `tok`. */
export function serverSaw(state: LabState, tok: string): string[] {
  if (!existsSync(state.serverLog)) return [];
  return readFileSync(state.serverLog, "utf8")
    .split("\n")
    .filter((line) => line.includes(tok))
    .map((line) => (JSON.parse(line) as { peer: string }).peer);
}

/** Runs a command in a namespace without throwing; exit code and output. */
export async function tryIn(
  ns: string,
  file: string,
  args: readonly string[],
  timeoutMs = 5000,
): Promise<{ code: number; out: string }> {
  const r = await execa("nsenter", [`--net=${netnsPath(ns)}`, file, ...args], {
    reject: false,
    timeout: timeoutMs,
  });
  return { code: r.exitCode ?? -1, out: `${String(r.stdout)}\n${String(r.stderr)}` };
}

/** One ping (`-W 1`), optionally with a TTL; `true` when a reply came. */
export async function ping(ns: string, ip: string, ttl?: number): Promise<boolean> {
  const args = ["-n", "-c", "1", "-W", "1", ...(ttl === undefined ? [] : ["-t", String(ttl)]), ip];
  return (await tryIn(ns, "ping", args)).code === 0;
}

/** Builds a result; a thrown error becomes a failed probe that says why. */
export async function probe(
  name: string,
  body: () => Promise<{ ok: boolean; observed: string }>,
): Promise<ProbeResult> {
  const started = Date.now();
  try {
    const { ok, observed } = await body();
    return { name, ok, observed, ms: Date.now() - started };
  } catch (error) {
    return { name, ok: false, observed: describeError(error), ms: Date.now() - started };
  }
}

/**
 * Network-namespace helpers for integration tests. Everything a test makes is
 * named uniquely (pid + random suffix) and removed by name in `t.teardown`,
 * also when the test fails. Namespaces made here are never connected to the
 * host's own namespace.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { execa, type Options, type Result } from "execa";

/** The part of a tap `Test` these helpers use. */
type Tap = {
  teardown(fn: () => unknown): void;
};

/** `true` when integration tests can run (root). */
export function canRunNetnsTests(): boolean {
  return process.getuid?.() === 0;
}

/** Reason string for `t.test(name, { skip: netnsSkipReason() }, ...)`; `false` when runnable. */
export function netnsSkipReason(): string | false {
  return canRunNetnsTests() ? false : "needs root to create network namespaces";
}

/** A short unique name: `prefix` + 4 base-36 chars of the pid + 4 random hex chars (fits IFNAMSIZ for short prefixes). */
export function uniqueName(prefix: string): string {
  return `${prefix}${(process.pid % 1679616).toString(36).padStart(4, "0")}${randomBytes(2).toString("hex")}`;
}

/** Creates a named network namespace with `lo` up; deleted in teardown. */
export async function createNetns(t: Tap, name: string): Promise<string> {
  await execa("ip", ["netns", "add", name]);
  t.teardown(() => removeNetns(name));
  await execa("ip", ["-n", name, "link", "set", "lo", "up"]);
  return name;
}

/** Deletes a namespace by name, ignoring "does not exist". Killing processes inside is the caller's job. */
export async function removeNetns(name: string): Promise<void> {
  await execa("ip", ["netns", "del", name], { reject: false });
}

/** Runs a command inside a namespace (network namespace only, like the lab: `nsenter --net`). */
export function inNetns(
  ns: string,
  file: string,
  args: readonly string[],
  options: Options = {},
): Promise<Result> {
  return execa("nsenter", [`--net=/run/netns/${ns}`, file, ...args], options) as Promise<Result>;
}

/** `ip -j ARGS` inside a namespace, parsed. */
export async function ipJson(ns: string, args: readonly string[]): Promise<unknown> {
  const result = await execa("ip", ["-n", ns, "-j", ...args]);
  return JSON.parse(String(result.stdout) || "[]");
}

/** Creates a veth pair with one end in each namespace (both set up). */
export async function createVethPair(
  a: { ns: string; name: string; mac?: string },
  b: { ns: string; name: string; mac?: string },
): Promise<void> {
  await execa("ip", [
    "-n",
    a.ns,
    "link",
    "add",
    a.name,
    "type",
    "veth",
    "peer",
    "name",
    b.name,
    "netns",
    b.ns,
  ]);
  if (a.mac !== undefined) await execa("ip", ["-n", a.ns, "link", "set", a.name, "address", a.mac]);
  if (b.mac !== undefined) await execa("ip", ["-n", b.ns, "link", "set", b.name, "address", b.mac]);
  await execa("ip", ["-n", a.ns, "link", "set", a.name, "up"]);
  await execa("ip", ["-n", b.ns, "link", "set", b.name, "up"]);
}

/** Spawns a long-lived process inside a namespace; killed (SIGKILL) in teardown. */
export function spawnInNetns(t: Tap, ns: string, file: string, args: readonly string[]): ChildProcess {
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, file, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return child;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 5000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await check();
  while (!value && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    value = await check();
  }
  return value;
}

/**
 * The lab's only door to the host: network namespaces (`ip netns`), commands
 * run inside them (`nsenter --net`, see DESIGN.md "The lab" for why not
 * `ip netns exec`), and detached processes tracked by pid file.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { execa } from "execa";
import { SystemError } from "../../shared/errors.js";

/** Where `ip netns add` puts the handle of a named namespace. */
export const NETNS_RUN_DIR = "/run/netns";

export function netnsPath(ns: string): string {
  return `${NETNS_RUN_DIR}/${ns}`;
}

export function netnsExists(ns: string): boolean {
  return existsSync(netnsPath(ns));
}

/** Runs a command and returns stdout; the error names the command and what it printed. */
export async function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const result = await execa(file, args, {
    reject: false,
    env: options.env ?? process.env,
    extendEnv: false,
    timeout: options.timeoutMs ?? 20_000,
  });
  if (result.exitCode !== 0 || result.failed) {
    // The command's own message, without Node stack frames.
    const output = `${String(result.stderr)}\n${String(result.stdout)}`
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("at ") && !l.startsWith("Node.js v"))
      .slice(0, 4)
      .join(" / ");
    throw new SystemError(
      `Cannot run "${[file, ...args].join(" ")}": ${result.timedOut ? "timed out" : `exit ${result.exitCode ?? result.signal}`}${output ? `: ${output}` : ""}`,
    );
  }
  return String(result.stdout);
}

/** `ip -n NS ARGS`. */
export function ipIn(ns: string, args: readonly string[]): Promise<string> {
  return run("ip", ["-n", ns, ...args]);
}

/** `ip -n NS -j ARGS`, parsed. */
export async function ipJsonIn(ns: string, args: readonly string[]): Promise<unknown> {
  const text = await run("ip", ["-n", ns, "-j", ...args]);
  return JSON.parse(text.trim() || "[]");
}

/** Runs a command in a namespace's network only. */
export function runIn(
  ns: string,
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  return run("nsenter", [`--net=${netnsPath(ns)}`, file, ...args], options);
}

/** Creates a named namespace with `lo` up. */
export async function addNetns(ns: string): Promise<void> {
  await run("ip", ["netns", "add", ns]);
  await ipIn(ns, ["link", "set", "lo", "up"]);
}

/** Deletes a namespace by name; `false` when it did not exist. */
export async function removeNetns(ns: string): Promise<boolean> {
  if (!netnsExists(ns)) return false;
  await run("ip", ["netns", "del", ns]);
  return true;
}

/** Writes a sysctl inside a namespace (the /proc/sys/net a process sees is its own namespace's). */
export function sysctlIn(ns: string, key: string, value: string): Promise<string> {
  return runIn(ns, "sysctl", ["-q", "-w", `${key}=${value}`]);
}

export interface DetachedSpec {
  /** namespace to run in, or undefined for the host's (processes that only use unix sockets) */
  readonly ns?: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly pidFile: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Starts a process that outlives the lab command (its own session, output to
 * a log file) and records its pid. `sh` and `nsenter` both exec the target,
 * so the pid is the target's own.
 */
export function spawnDetached(spec: DetachedSpec): number {
  const log = openSync(spec.logFile, "a");
  try {
    const command =
      spec.ns === undefined
        ? [spec.file, ...spec.args]
        : ["nsenter", `--net=${netnsPath(spec.ns)}`, spec.file, ...spec.args];
    // The child writes its own pid file before it execs the command: if `up` is
    // killed right after spawn(), the process still has its pid file, so `down`
    // finds it.
    const child = spawn("sh", ["-c", 'echo $$ > "$0" && exec "$@"', spec.pidFile, ...command], {
      detached: true,
      stdio: ["ignore", log, log],
      env: spec.env ?? process.env,
    });
    if (child.pid === undefined) throw new SystemError(`Cannot start "${spec.file}": spawn failed`);
    writeFileSync(spec.pidFile, `${child.pid}\n`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** `true` when one of the process's arguments is `dir` or a path inside it. */
export function argvMentions(pid: number, dir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => a === dir || a.startsWith(`${dir}/`) || a.includes(`=${dir}/`));
  } catch {
    return false;
  }
}

/** The pid in a pid file if that process is alive and one of its arguments names `dir` (the lab's). */
export function livePid(pidFile: string, dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  // A pid file can outlive its process and the pid be reused: only a process
  // whose argv names this lab's directory is ours.
  return argvMentions(pid, dir) && isAlive(pid) ? pid : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopPid(pid: number, graceMs = 2000): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(20);
  if (isAlive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    while (isAlive(pid)) await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs` with `what`. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new SystemError(`Cannot wait for ${what}: not done after ${timeoutMs} ms`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

/**
 * `lab down`: removes, by name, everything lab.json says the lab made or was
 * about to make — processes (by pid file, only if their command line names
 * this lab's directory), the agent's NAT namespaces for the lab's vifs, the
 * lab's namespaces, then the directory. Keeps going past failures and reports
 * them all (netavark's teardown). Running it twice is a no-op.
 */
import { existsSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describeError } from "../../shared/errors.js";
import { loadState, STATE_FILE } from "./state.js";
import { livePid, removeNetns, stopPid } from "./system.js";

export interface DownReport {
  readonly found: boolean;
  readonly stopped: string[];
  readonly removedNamespaces: string[];
  readonly failures: string[];
}

/** Subpaths `up` creates in DIR; only these are deleted (never a blind `rm -rf DIR`). */
const OWNED_ENTRIES = ["run", "log", "pids", "agent", "qubes", "tmp", `${STATE_FILE}.tmp`, STATE_FILE];

export async function down(dir: string): Promise<DownReport> {
  const report: DownReport = { found: false, stopped: [], removedNamespaces: [], failures: [] };
  const state = loadState(dir);
  if (state === undefined) return report;
  const attempt = async (what: string, action: () => Promise<void>): Promise<void> => {
    try {
      await action();
    } catch (error) {
      report.failures.push(`Cannot remove ${what}: ${describeError(error)}`);
    }
  };
  const marker = state.dir;
  // 1. The supervisor first, so it does not restart the agent; then the rest, newest first.
  const processes = [...state.processes]
    .reverse()
    .sort((a, b) => Number(b.name === "agent-supervisor") - Number(a.name === "agent-supervisor"));
  for (const p of processes) {
    await attempt(`process ${p.name}`, async () => {
      const pid = livePid(p.pidFile, marker);
      if (pid === undefined) return;
      await stopPid(pid);
      report.stopped.push(`${p.name} (pid ${pid})`);
    });
  }
  // 2. NAT namespaces the agent made for the lab's vifs, then the lab's own.
  for (const ns of [...state.natNamespaces, ...[...state.namespaces].reverse()]) {
    await attempt(`namespace ${ns}`, async () => {
      if (await removeNetns(ns)) report.removedNamespaces.push(ns);
    });
  }
  // 3. The directory, only what up created in it; kept after a failure so down can run again.
  if (report.failures.length > 0) return { ...report, found: true };
  await attempt(`directory ${dir}`, async () => {
    for (const entry of OWNED_ENTRIES) rmSync(join(dir, entry), { recursive: true, force: true });
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  });
  return { ...report, found: true };
}

/**
 * Probe 8 and the after-`down` check: which namespaces, processes and
 * sockets of a lab exist on the host. While the lab runs, everything found
 * must be recorded in lab.json (so `down` removes it); after `down`, nothing
 * may be found at all.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { LabState } from "../state.js";
import { argvMentions, NETNS_RUN_DIR } from "../system.js";
import { type ProbeResult, probe } from "./context.js";

export interface Leftovers {
  readonly namespaces: string[];
  readonly processes: Array<{ pid: number; command: string }>;
  readonly sockets: string[];
}

/** This process and its ancestors: their command lines may name the lab's directory too. */
function ownLineage(): Set<number> {
  const pids = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      break;
    }
  }
  return pids;
}

/** Scans the host (read-only) for anything of the lab with this prefix, directory and vifs. */
export function findLeftovers(state: {
  readonly prefix: string;
  readonly dir: string;
  readonly runDir: string;
  readonly vms: ReadonlyArray<{ readonly vif: string }>;
}): Leftovers {
  const natNames = new Set(state.vms.map((v) => `${v.vif}-nat`));
  const namespaces = existsSync(NETNS_RUN_DIR)
    ? readdirSync(NETNS_RUN_DIR).filter((n) => n.startsWith(state.prefix) || natNames.has(n))
    : [];
  const processes: Array<{ pid: number; command: string }> = [];
  const lineage = ownLineage();
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry) || lineage.has(Number(entry))) continue;
    try {
      if (argvMentions(Number(entry), state.dir)) {
        const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
        processes.push({ pid: Number(entry), command: argv.join(" ").trim().slice(0, 120) });
      }
    } catch {
      // gone meanwhile
    }
  }
  const sockets = existsSync(state.runDir)
    ? readdirSync(state.runDir).filter((f) => f.endsWith(".sock"))
    : [];
  return { namespaces, processes, sockets };
}

export function probeLeftovers(state: LabState): Promise<ProbeResult> {
  return probe("everything the lab made is recorded, so down removes it all", async () => {
    const found = findLeftovers(state);
    const recorded = new Set([...state.namespaces, ...state.natNamespaces]);
    const unrecordedNs = found.namespaces.filter((n) => !recorded.has(n));
    const pidFiles = state.processes.map((p) => {
      try {
        return Number.parseInt(readFileSync(p.pidFile, "utf8"), 10);
      } catch {
        return -1;
      }
    });
    const unrecordedPids = found.processes.filter((p) => !pidFiles.includes(p.pid));
    return {
      ok: unrecordedNs.length === 0 && unrecordedPids.length === 0,
      observed: `${found.namespaces.length} namespaces, ${found.processes.length} processes, ${found.sockets.length} sockets; unrecorded: ${
        [...unrecordedNs, ...unrecordedPids.map((p) => `pid ${p.pid} ${p.command}`)].join(", ") || "none"
      }`,
    };
  });
}

#!/usr/bin/env node
/**
 * The lab's process supervisor (what systemd's `Restart=always` does for the
 * agent on a real ProxyVM): runs one command, restarts it when it dies, and
 * keeps the current child's pid in a file so probes can kill it.
 *
 *   supervisor.js --child-pid-file FILE -- COMMAND [ARGS...]
 *
 * SIGTERM stops the child (SIGTERM, then SIGKILL after 2 s) and exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";

/** restart delay after a crash, doubled up to the maximum while the child keeps dying fast */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 2000;
/** a child that lived this long counts as healthy: the delay resets */
const HEALTHY_MS = 5000;

function parseArgs(argv: readonly string[]): { childPidFile: string; command: string[] } {
  const sep = argv.indexOf("--");
  const flag = argv.indexOf("--child-pid-file");
  const childPidFile = flag >= 0 ? argv[flag + 1] : undefined;
  const command = sep >= 0 ? argv.slice(sep + 1) : [];
  if (childPidFile === undefined || command.length === 0) {
    process.stderr.write("usage: supervisor.js --child-pid-file FILE -- COMMAND [ARGS...]\n");
    process.exit(2);
  }
  return { childPidFile, command };
}

const { childPidFile, command } = parseArgs(process.argv.slice(2));
let child: ChildProcess | undefined;
let stopping = false;
let delay = RESTART_MIN_MS;

function start(): void {
  const startedAt = Date.now();
  const [file, ...args] = command as [string, ...string[]];
  const current = spawn(file, args, { stdio: ["ignore", "inherit", "inherit"] });
  child = current;
  if (current.pid !== undefined) writeFileSync(childPidFile, `${current.pid}\n`);
  process.stderr.write(`INFO supervisor started child pid=${current.pid}\n`);
  current.on("exit", (code, signal) => {
    process.stderr.write(`WARN supervisor child exited pid=${current.pid} code=${code} signal=${signal}\n`);
    if (stopping) {
      rmSync(childPidFile, { force: true });
      process.exit(0);
    }
    const healthy = Date.now() - startedAt > HEALTHY_MS;
    const wait = healthy ? RESTART_MIN_MS : delay;
    delay = Math.min((healthy ? RESTART_MIN_MS : delay) * 2, RESTART_MAX_MS);
    setTimeout(start, wait);
  });
  current.on("error", (error) =>
    process.stderr.write(`ERROR supervisor cannot start child: ${error.message}\n`),
  );
}

function stop(): void {
  if (stopping) return;
  stopping = true;
  const current = child;
  if (current === undefined || current.exitCode !== null || current.signalCode !== null) process.exit(0);
  current.kill("SIGTERM");
  setTimeout(() => current.kill("SIGKILL"), 2000).unref();
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
start();

/**
 * systemd readiness notification (sd_notify(3)) without a native module.
 *
 * Node cannot send unix datagrams, so we run `systemd-notify`, which is present
 * wherever systemd is. `--pid=<our pid>` makes it send on our behalf: as root
 * the datagram carries our PID in its credentials, so `NotifyAccess=main`
 * accepts it and systemd does not need to look up the short-lived helper
 * (the race systemd-notify(1) warns about); unprivileged, systemd-notify falls
 * back to its own credentials and the unit needs `NotifyAccess=all`. As root
 * we pass `--no-block` (the man page's recommendation when sending on the main
 * process's behalf); otherwise systemd-notify's barrier closes the race.
 * Without `$NOTIFY_SOCKET` (not started by systemd) both calls do nothing.
 */
import { execFile } from "node:child_process";
import { SystemError } from "./errors.js";

const NOTIFY_TIMEOUT_MS = 10_000;

function sdNotify(assignments: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (!env["NOTIFY_SOCKET"]) return Promise.resolve();
  const args = [`--pid=${process.pid}`, ...(process.getuid?.() === 0 ? ["--no-block"] : []), ...assignments];
  return new Promise((resolve, reject) => {
    execFile("systemd-notify", args, { env, timeout: NOTIFY_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (error === null) {
        resolve();
        return;
      }
      const why = stderr.trim() || error.message;
      reject(new SystemError(`Cannot notify systemd "${assignments.join(" ")}": ${why}`, { cause: error }));
    });
  });
}

/** `READY=1`: start-up (or a reload) is complete. */
export function notifyReady(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return sdNotify(["READY=1"], env);
}

/** `RELOADING=1` with the CLOCK_MONOTONIC timestamp that `Type=notify-reload` requires. */
export function notifyReloading(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const monotonicUsec = process.hrtime.bigint() / 1000n;
  return sdNotify(["RELOADING=1", `MONOTONIC_USEC=${monotonicUsec}`], env);
}

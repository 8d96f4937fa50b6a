/**
 * `qubes-fakeip-dom0 serve`: keeps every running VM's keys published.
 * Triggers only mark "dirty"; one sync at a time converges everything:
 *  - qubes.xml or any firewall.xml changed on disk (fs.watch, debounced),
 *  - a QubesDB socket appeared in the run directory (a VM started),
 *  - the next firewall rule expiry (timer rebuilt from the files after every
 *    sync, so also after a restart),
 *  - SIGHUP.
 * SIGTERM/SIGINT finish the current sync and exit.
 */
import { existsSync, type FSWatcher, watch } from "node:fs";
import { mkdir } from "node:fs/promises";
import { describeError } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { notifyReady } from "../../shared/sd-notify.js";
import { readCollection } from "../model/collection.js";
import { readStore, withStoreLock } from "../store/store.js";
import { type PublishReport, publishAll } from "./publish.js";

const DEBOUNCE_MS = 100;
/** setTimeout's limit; a later expiry is re-armed when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RELEVANT_FILE = /(^|\/)(qubes\.xml|firewall\.xml)$/;
const SOCKET_FILE = /^qubesdb\.[A-Za-z][A-Za-z0-9_.-]*\.sock$/;

export interface ServeOptions {
  readonly qubesDir: string;
  readonly runDir: string;
  readonly log: Logger;
  /** UNIX seconds (tests may pass a fake clock) */
  readonly now?: () => number;
}

/** Publishes once under the store lock. */
export async function syncOnce(options: ServeOptions): Promise<PublishReport> {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  // No store directory: nothing to publish, and a one-shot sync must not create
  // /var/lib/qubes on a host that has none.
  if (!existsSync(options.qubesDir)) return { vms: 0, writes: 0, removes: 0, errors: [] };
  return withStoreLock(options.qubesDir, async () => {
    const collection = readCollection(await readStore(options.qubesDir));
    return publishAll(
      { qubesDir: options.qubesDir, runDir: options.runDir, now: now(), log: options.log },
      collection,
    );
  });
}

/** Runs until SIGTERM/SIGINT (or `signal` aborts); resolves when stopped. */
export async function serve(options: ServeOptions, signal?: AbortSignal): Promise<void> {
  const { log } = options;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  await mkdir(options.qubesDir, { recursive: true });
  let dirty = true;
  let running = false;
  let stopping = false;
  let debounce: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  const markDirty = (reason: string) => {
    log.debug("change", { reason });
    dirty = true;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      wake?.();
    }, DEBOUNCE_MS);
  };
  const armExpiry = (at: number | undefined) => {
    if (expiryTimer !== undefined) clearTimeout(expiryTimer);
    expiryTimer = undefined;
    if (at === undefined) return;
    const delay = Math.min(Math.max(0, (at - now()) * 1000 + 50), MAX_TIMER_MS);
    expiryTimer = setTimeout(() => markDirty("rule expiry"), delay);
  };

  const watchers: FSWatcher[] = [];
  const addWatch = (path: string, recursive: boolean, filter: RegExp) => {
    try {
      const watcher = watch(path, { recursive }, (_event, file) => {
        if (file !== null && filter.test(String(file))) markDirty(`${path}/${file}`);
      });
      watcher.on("error", (error) => log.warn("watch failed", { path, error: describeError(error) }));
      watchers.push(watcher);
    } catch (error) {
      log.warn("cannot watch", { path, error: describeError(error) });
    }
  };
  addWatch(options.qubesDir, true, RELEVANT_FILE);
  await mkdir(options.runDir, { recursive: true }).catch(() => undefined);
  addWatch(options.runDir, false, SOCKET_FILE);

  const stop = () => {
    stopping = true;
    wake?.();
  };
  const hup = () => markDirty("SIGHUP");
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", hup);
  signal?.addEventListener("abort", stop);

  let first = true;
  try {
    while (!stopping) {
      if (dirty && debounce === undefined && !running) {
        dirty = false;
        running = true;
        try {
          const report = await syncOnce({ ...options, now });
          for (const line of report.errors) log.error(line);
          armExpiry(report.nextExpiry);
          log.info(first ? "ready" : "synced", {
            vms: report.vms,
            writes: report.writes,
            removes: report.removes,
            ...(report.nextExpiry === undefined ? {} : { next_expiry: report.nextExpiry }),
          });
          if (first) {
            // READY=1 only after the first complete publication (STYLE.md, daemon manners).
            await notifyReady().catch((error) =>
              log.warn("cannot notify systemd", { error: describeError(error) }),
            );
          }
          first = false;
        } catch (error) {
          // A broken qubes.xml is reported once; the next change retries.
          log.error("sync failed", { error: describeError(error) });
        } finally {
          running = false;
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    for (const watcher of watchers) watcher.close();
    if (debounce !== undefined) clearTimeout(debounce);
    if (expiryTimer !== undefined) clearTimeout(expiryTimer);
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    process.off("SIGHUP", hup);
    log.info("stopped");
  }
}

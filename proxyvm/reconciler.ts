/**
 * The reconcile loop (STYLE.md: kubernetes/sample-controller). Events only
 * mark `component/key` dirty; a mark of a key already queued collapses into
 * the queued one; one worker converges one key at a time from current facts.
 * A transient failure retries with exponential back-off; a
 * `PermanentSyncError` is reported once and not retried until the next event
 * for that key.
 */

import { describeError } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import { type AgentComponent, PermanentSyncError } from "./component.js";

export interface SyncResult {
  readonly ok: boolean;
  readonly error?: string;
}

export interface ReconcilerOptions {
  readonly components: readonly AgentComponent[];
  readonly log: Logger;
  /** first retry delay; doubles up to `maxBackoffMs` */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

interface Work {
  readonly component: AgentComponent;
  readonly key: string;
  /** set for a full reload through `syncAll` (one transaction for every key) */
  readonly all?: readonly string[];
}

/** Queue key of a component's full reload; never a real key (QubesDB paths and vif names have no NUL). */
const ALL = "\u0000all";

const id = (component: AgentComponent, key: string) => `${component.name}\u0000${key}`;

export class Reconciler {
  readonly #components: readonly AgentComponent[];
  readonly #log: Logger;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  /** insertion-ordered: the queue; a key is in it at most once */
  readonly #dirty = new Map<string, Work>();
  readonly #failures = new Map<string, number>();
  readonly #retryTimers = new Map<string, NodeJS.Timeout>();
  readonly #waiters = new Map<string, ((result: SyncResult) => void)[]>();
  #idleWaiters: (() => void)[] = [];
  #running = false;
  #stopping = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: ReconcilerOptions) {
    this.#components = options.components;
    this.#log = options.log;
    this.#initialBackoff = options.initialBackoffMs ?? 200;
    this.#maxBackoff = options.maxBackoffMs ?? 30_000;
  }

  get components(): readonly AgentComponent[] {
    return this.#components;
  }

  /** Marks a key dirty (a retry timer for it is superseded). */
  mark(component: AgentComponent, key: string): void {
    const k = id(component, key);
    const timer = this.#retryTimers.get(k);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#retryTimers.delete(k);
    }
    if (!this.#dirty.has(k)) this.#dirty.set(k, { component, key });
    this.#wake?.();
  }

  /**
   * Marks a key and resolves with the result of the first sync of it that
   * begins after this call (success or the first failure), never one that was
   * already running.
   */
  markAndWait(component: AgentComponent, key: string): Promise<SyncResult> {
    const k = id(component, key);
    const promise = new Promise<SyncResult>((resolve) => {
      this.#waiters.set(k, [...(this.#waiters.get(k) ?? []), resolve]);
    });
    this.mark(component, key);
    return promise;
  }

  /** Routes a QubesDB event path to every component's keys; `""` (reconnect marker) re-lists everything. */
  async handleQubesDbEvent(path: string): Promise<void> {
    if (path === "") {
      await this.markAll();
      return;
    }
    for (const component of this.#components) {
      for (const key of component.keysForEvent(path)) this.mark(component, key);
    }
  }

  /**
   * Marks every key of every component (start, SIGHUP, QubesDB reconnect). A
   * component with `syncAll` gets one work item for all its keys instead.
   */
  async markAll(): Promise<void> {
    for (const component of this.#components) {
      const keys = await component.listKeys();
      if (component.syncAll === undefined) {
        for (const key of keys) this.mark(component, key);
      } else {
        const k = id(component, ALL);
        this.#dirty.delete(k);
        this.#dirty.set(k, { component, key: ALL, all: keys });
        this.#wake?.();
      }
    }
  }

  /** Resolves when the queue is empty and no sync is running (retries pending on timers do not count). */
  whenIdle(): Promise<void> {
    if (this.#dirty.size === 0 && !this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Starts the worker. */
  start(): void {
    this.#loop ??= this.#work();
  }

  /** Lets the current sync finish, then stops (SIGTERM). Queued keys stay unsynced; the data plane stays. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#retryTimers.values()) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#wake?.();
    await this.#loop;
  }

  async #work(): Promise<void> {
    while (!this.#stopping) {
      const next = this.#dirty.entries().next();
      if (next.done === true) {
        for (const resolve of this.#idleWaiters.splice(0)) resolve();
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        continue;
      }
      const [k, work] = next.value;
      this.#dirty.delete(k);
      this.#running = true;
      // Only the waiters marked before this sync began get its result: one that
      // marks the key while it runs may bring facts this sync did not read, and
      // waits for the next sync (its mark queued the key again).
      const waiting = this.#waiters.get(k)?.splice(0) ?? [];
      const result = await this.#syncOne(k, work);
      this.#running = false;
      for (const resolve of waiting) resolve(result);
    }
  }

  async #syncOne(k: string, work: Work): Promise<SyncResult> {
    const { component, key } = work;
    const context = { component: component.name, key: work.all === undefined ? key : "(all)" };
    try {
      if (work.all !== undefined && component.syncAll !== undefined) await component.syncAll(work.all);
      else await component.sync(key);
      if (this.#failures.delete(k)) this.#log.info("converged after failure", context);
      else this.#log.debug("converged", context);
      return { ok: true };
    } catch (error) {
      const message = describeError(error);
      if (error instanceof PermanentSyncError) {
        this.#failures.delete(k);
        this.#log.error("invalid input, not retrying", { ...context, error: message });
        return { ok: false, error: message };
      }
      const attempts = (this.#failures.get(k) ?? 0) + 1;
      this.#failures.set(k, attempts);
      const delay = Math.min(this.#maxBackoff, this.#initialBackoff * 2 ** (attempts - 1));
      this.#log.warn("sync failed, will retry", {
        ...context,
        attempt: attempts,
        retryMs: delay,
        error: message,
      });
      if (!this.#stopping) {
        const timer = setTimeout(() => {
          this.#retryTimers.delete(k);
          if (work.all === undefined) {
            this.mark(component, key);
          } else if (!this.#dirty.has(k)) {
            this.#dirty.set(k, work);
            this.#wake?.();
          }
        }, delay);
        timer.unref();
        this.#retryTimers.set(k, timer);
      }
      return { ok: false, error: message };
    }
  }
}

/**
 * How a part of the agent plugs into the one reconcile loop (STYLE.md:
 * reconcile by key). The NAT data plane (`proxyvm/nat`) and the firewall
 * (`proxyvm/firewall`) are both components; the reconciler owns the queue,
 * de-duplication, retry with back-off, readiness and SIGHUP.
 */
import type { Logger } from "../shared/log.js";
import type { QubesDbClient } from "../shared/qubesdb/types.js";

export interface AgentContext {
  readonly qubesdb: QubesDbClient;
  readonly log: Logger;
  /** wall clock in milliseconds; an input, so planners stay deterministic */
  now(): number;
}

/** Thrown by `sync` for input that is wrong and will stay wrong: reported once, never retried. */
export class PermanentSyncError extends Error {
  override name = "PermanentSyncError";
}

export interface AgentComponent {
  readonly name: string;
  /** QubesDB watch paths this component needs (`/`-terminated = prefix watch) */
  readonly watches: readonly string[];
  /** Keys to mark dirty for a QubesDB event path; `[]` when the event is not this component's */
  keysForEvent(path: string): string[];
  /** Every key the component should converge now (at start and on SIGHUP) */
  listKeys(): Promise<string[]>;
  /**
   * Converges one key from current facts (read inside `sync`, never taken from
   * the event; a component may keep what it read until a watched event arrives).
   * Throw `PermanentSyncError` for invalid input (after failing closed), any other error to retry.
   */
  sync(key: string): Promise<void>;
  /** Optional: converge all keys in one step (one nft transaction for a full reload) */
  syncAll?(keys: readonly string[]): Promise<void>;
  /**
   * Optional: runs the hot path once on throwaway objects before READY=1
   * (code compiled, worker threads started, first-use kernel set-up), so the
   * first VM is no slower than the next. Leaves nothing behind; a failure only
   * costs speed.
   */
  warmUp?(): Promise<void>;
  /** Per-key state for `qubes-fakeip-agent status` */
  status(): Record<string, unknown>;
}

/**
 * Writes the ProxyVM's allow-list (antispoof.ts) with as few and as cheap nft
 * transactions as correctness allows. A commit that only adds elements costs
 * the kernel ~1 ms; one that removes anything (elements, rules) waits out an
 * RCU grace period, 6-20 ms measured. So:
 * - the table is declared (chains flushed and their rules re-added) only by
 *   the first transaction and after a failure; later ones change elements;
 * - removals of vifs that are gone are deferred and coalesced: an entry keyed
 *   by a vif name that no longer exists matches no packet, and a vif of the
 *   same name can only come back through `online`, whose own transaction
 *   carries the pending removals first. A short timer flushes whatever is left.
 */
import { type AllowedPair, type InnerMaps, planAntispoofChange } from "./antispoof.js";

export interface AllowList {
  /** One transaction: pending removals, then `remove`, then `add`. */
  change(
    add: readonly AllowedPair[],
    remove: readonly AllowedPair[],
    ndp?: { add?: string[]; remove?: string[] },
  ): Promise<void>;
  /** Removal of entries whose vif is gone, written with the next change or after `delayMs`. */
  deferRemove(remove: readonly AllowedPair[], ndpRemove: readonly string[]): void;
  /** Writes pending removals now. */
  flush(): Promise<void>;
  /**
   * Records that the table was just declared by someone else (the connected
   * sets' transaction, which declares it too) and that the kernel's inner
   * maps hold `inner` (read from it): the next change only adds and removes
   * elements.
   */
  adopt(inner: InnerMaps): void;
}

export function createAllowList(
  nft: (script: string) => Promise<void>,
  options: {
    delayMs?: number;
    onError?: (error: unknown) => void;
    /** the whole ICMP inner-rewrite maps, rewritten with every transaction */
    innerMaps?: () => InnerMaps;
  } = {},
): AllowList {
  let pending: AllowedPair[] = [];
  /** the inner maps as the last successful transaction left them; unknown at first and after a failure */
  let appliedInner: InnerMaps | undefined;
  let pendingNdp: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  /** the table was declared by a successful transaction of this allow-list (reset by any failure) */
  let declared = false;
  const delayMs = options.delayMs ?? 50;

  const take = () => {
    const taken = { pairs: pending, ndp: pendingNdp };
    pending = [];
    pendingNdp = [];
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    return taken;
  };
  const restore = (taken: { pairs: AllowedPair[]; ndp: string[] }) => {
    pending = [...taken.pairs, ...pending];
    pendingNdp = [...taken.ndp, ...pendingNdp];
  };

  const list: AllowList = {
    async change(add, remove, ndp = {}) {
      const taken = take();
      const maps = options.innerMaps?.();
      const script = (declare: boolean) =>
        planAntispoofChange(
          add,
          [...taken.pairs, ...remove],
          { add: ndp.add ?? [], remove: [...taken.ndp, ...(ndp.remove ?? [])] },
          maps === undefined ? undefined : { maps, applied: declare ? undefined : appliedInner },
          declare,
        );
      try {
        if (declared) {
          try {
            await nft(script(false));
          } catch {
            // the table changed under us (deleted, flushed): once more, declaring it whole
            declared = false;
            await nft(script(true));
          }
        } else {
          await nft(script(true));
        }
        declared = true;
        appliedInner = maps;
      } catch (error) {
        restore(taken);
        declared = false;
        appliedInner = undefined;
        throw error;
      }
    },
    deferRemove(remove, ndpRemove) {
      pending.push(...remove);
      pendingNdp.push(...ndpRemove);
      timer ??= setTimeout(() => {
        timer = undefined;
        list.flush().catch((error: unknown) => options.onError?.(error));
      }, delayMs);
      timer.unref();
    },
    adopt(inner) {
      declared = true;
      appliedInner = inner;
    },
    async flush() {
      if (pending.length === 0 && pendingNdp.length === 0) return;
      await list.change([], []);
    },
  };
  return list;
}

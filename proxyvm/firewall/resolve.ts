/**
 * Resolution of `dsthost` names, outside the compiler (STYLE.md: resolve
 * outside, compile inside). A for the IPv4 set, AAAA for the IPv6 set, with
 * the records' TTL: an answer is reused until its TTL runs out, then resolved
 * again (the reference resolves once and goes stale, Qubes issue 5225). A
 * failed lookup is retried with exponential back-off. One VM's slow DNS never
 * holds up another's rules: `resolveHosts` can wait a bounded time and report
 * what it has, then call back when the rest arrives.
 */
import { promises as dns } from "node:dns";
import { isIPv4, isIPv6 } from "../../shared/net/ip.js";
import type { Family } from "./family.js";

export interface ResolvedAddress {
  readonly address: string;
  /** seconds */
  readonly ttl: number;
}

/** Looks up A (4) or AAAA (6) records. Rejects on failure; resolves `[]` when the name has no such records. */
export type LookupFn = (host: string, family: Family) => Promise<ResolvedAddress[]>;

export interface ResolverTimings {
  /** shortest reuse of an answer (a TTL of 0 would otherwise re-resolve in a loop), ms */
  readonly minTtlMs: number;
  /** longest reuse of an answer, ms */
  readonly maxTtlMs: number;
  /** reuse of an empty (no records) answer: it carries no TTL, ms */
  readonly emptyTtlMs: number;
  /** first retry after a failure; doubles per failure up to `maxBackoffMs` */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_TIMINGS: ResolverTimings = {
  minTtlMs: 1000,
  maxTtlMs: 24 * 3600 * 1000,
  emptyTtlMs: 60_000,
  backoffMs: 1000,
  maxBackoffMs: 60_000,
};

/** `node:dns` lookups with `{ ttl: true }`, against `servers` (`--dns-server`) or the system's. */
export function createDnsLookup(servers: readonly string[] = [], timeoutMs = 2000): LookupFn {
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return async (host, family) => {
    try {
      const records =
        family === 4
          ? await resolver.resolve4(host, { ttl: true })
          : await resolver.resolve6(host, { ttl: true });
      return records.map((r) => ({ address: r.address, ttl: r.ttl }));
    } catch (error) {
      // ENODATA: the name exists without records of this family: an answer, not a failure
      if ((error as NodeJS.ErrnoException).code === "ENODATA") return [];
      throw error;
    }
  };
}

interface Entry {
  /** `addr/len` of the last successful answer; undefined after a failure */
  addresses: string[] | undefined;
  error: string | undefined;
  /** when to ask again (TTL end, or the next retry), ms */
  refreshAt: number;
  failures: number;
}

export interface HostsResult {
  /** host → `addr/len`, for the names that resolved (possibly to nothing) */
  readonly resolved: Map<string, string[]>;
  /** host → reason, for the names that did not */
  readonly failed: Map<string, string>;
  /** earliest moment one of these names must be resolved again; undefined when there are none */
  readonly refreshAt: number | undefined;
}

export class HostCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #lookup: LookupFn;
  readonly #timings: ResolverTimings;

  constructor(lookup: LookupFn, timings: Partial<ResolverTimings> = {}) {
    this.#lookup = lookup;
    this.#timings = { ...DEFAULT_TIMINGS, ...timings };
  }

  /**
   * Resolves every name whose answer is missing or due (concurrently) and reports all of them.
   * With `waitMs`, waits at most that long (one VM's slow or dead DNS must not hold up the
   * others): a name still resolving then counts as unresolved, or keeps its expired answer while
   * it is refreshed, and `onLate` runs once the lookups finish, so the caller can sync again.
   */
  async resolveHosts(
    family: Family,
    hosts: Iterable<string>,
    now: number,
    options: { waitMs?: number; onLate?: () => void } = {},
  ): Promise<HostsResult> {
    const names = [...new Set(hosts)].sort();
    const all = Promise.all(names.map((host) => this.#refreshOnce(family, host, now)));
    if (options.waitMs === undefined) await all;
    else {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), options.waitMs);
      });
      const settled = await Promise.race([all.then(() => true), late]);
      clearTimeout(timer);
      if (!settled) void all.then(() => options.onLate?.());
    }
    const resolved = new Map<string, string[]>();
    const failed = new Map<string, string>();
    let refreshAt: number | undefined;
    for (const host of names) {
      const key = cacheKey(family, host);
      const entry = this.#entries.get(key);
      if (entry === undefined) {
        failed.set(host, "still resolving");
        continue;
      }
      if (entry.addresses !== undefined) resolved.set(host, entry.addresses);
      else failed.set(host, entry.error ?? "not resolved");
      if (!this.#inflight.has(key)) {
        refreshAt = refreshAt === undefined ? entry.refreshAt : Math.min(refreshAt, entry.refreshAt);
      }
    }
    return { resolved, failed, refreshAt };
  }

  /** One lookup per name at a time: concurrent callers share it. */
  #refreshOnce(family: Family, host: string, now: number): Promise<void> {
    const key = cacheKey(family, host);
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.refreshAt > now) return Promise.resolve();
    const promise = this.#refresh(family, host, now).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  async #refresh(family: Family, host: string, now: number): Promise<void> {
    const key = cacheKey(family, host);
    const entry = this.#entries.get(key);
    const t = this.#timings;
    try {
      const records = await this.#lookup(host, family);
      const valid = records.filter((r) => (family === 4 ? isIPv4(r.address) : isIPv6(r.address)));
      const ttlMs = valid.length === 0 ? t.emptyTtlMs : Math.min(...valid.map((r) => r.ttl * 1000));
      const addresses = [...new Set(valid.map((r) => `${r.address}/${family === 4 ? 32 : 128}`))].sort();
      this.#entries.set(key, {
        addresses,
        error: undefined,
        refreshAt: now + Math.min(t.maxTtlMs, Math.max(t.minTtlMs, ttlMs)),
        failures: 0,
      });
    } catch (error) {
      const failures = (entry?.failures ?? 0) + 1;
      const code = (error as NodeJS.ErrnoException).code;
      this.#entries.set(key, {
        addresses: undefined,
        error: code ?? (error instanceof Error ? error.message : String(error)),
        refreshAt: now + Math.min(t.maxBackoffMs, t.backoffMs * 2 ** (failures - 1)),
        failures,
      });
    }
  }

  /** Forgets names no VM uses any more. */
  retain(keep: ReadonlySet<string>): void {
    for (const key of this.#entries.keys()) {
      if (!keep.has(key)) this.#entries.delete(key);
    }
  }
}

export function cacheKey(family: Family, host: string): string {
  return `${family} ${host}`;
}

/**
 * The firewall as a component of the agent's reconcile loop. Key = a VM's
 * native address N (IPv4) or N6 (IPv6).
 *
 * Only the commit signal is acted on (spec/keys.md): a write (or removal) of
 * `/qubes-firewall/N` marks N dirty; writes below it never do. `sync(N)` reads
 * the signal and the whole rule set in one multiread, validates, resolves,
 * compiles and applies one nft transaction for N. Every attempt is reported.
 * Fail closed: whatever goes wrong for N, N's drop-all chains are installed
 * (their own transaction) before the error is reported.
 */
import { describeError } from "../../shared/errors.js";
import { formatQubesDbRule, parseQubesDbRuleSet } from "../../shared/firewall/index.js";
import {
  FIREWALL_PREFIX,
  firewallRulesPrefix,
  firewallSignalKey,
  parseFirewallSignalKey,
} from "../../shared/keys.js";
import { isIPv4, isIPv6, normalizeIPv6 } from "../../shared/net/ip.js";
import { type AgentComponent, type AgentContext, PermanentSyncError } from "../component.js";
import { createNftApplier, type NftApplier } from "./apply.js";
import { findUnresolvedDrop } from "./atoms.js";
import {
  compileFullScript,
  compileRemovalScript,
  compileVmScript,
  formatGeneration,
  type VmInput,
} from "./compile.js";
import { type Family, familyOf } from "./family.js";
import { exportResolved, listReportedAddresses, removeReports, reportAttempt } from "./report.js";
import { cacheKey, createDnsLookup, HostCache, type LookupFn, type ResolverTimings } from "./resolve.js";

export interface FirewallComponentOptions {
  /** run nft in this named network namespace (tests, the lab) */
  readonly netns?: string;
  /** replaces the nft runner (unit tests of the logic only) */
  readonly applier?: NftApplier;
  /** `iifname` pattern of client interfaces (default `vif*`) */
  readonly clientInterfaces?: string;
  /** DNS servers for `dsthost` (`--dns-server`); the system's when empty */
  readonly dnsServers?: readonly string[];
  /** replaces the DNS lookup (unit tests) */
  readonly lookup?: LookupFn;
  readonly resolverTimings?: Partial<ResolverTimings>;
  /** longest wait for DNS inside one sync; names still resolving then trigger a later sync (default 500 ms) */
  readonly dnsWaitMs?: number;
  /** asks the reconcile loop to sync N again (a DNS answer ran out); default: the component does it itself */
  readonly requestSync?: (key: string) => void;
}

const DEFAULT_DNS_WAIT_MS = 500;

export interface FirewallVmStatus {
  readonly state: "enforcing" | "blocked";
  readonly rules: number;
  readonly generation?: string;
  readonly error?: string;
  readonly dnsRefreshAt?: number;
}

export interface FirewallComponent extends AgentComponent {
  /** stops DNS refresh timers and the nft session (the data plane stays) */
  close(): void;
}

interface Facts {
  readonly input: VmInput;
  readonly rules: number;
  readonly resolved: ReadonlyMap<string, readonly string[]>;
  readonly refreshAt: number | undefined;
  /** the rule set itself is invalid: reported once, not retried */
  readonly invalid: boolean;
}

/** A key is a canonical native address; anything else under `/qubes-firewall/` is not ours to act on. */
function isNativeAddress(n: string): boolean {
  return isIPv4(n) || (isIPv6(n) && normalizeIPv6(n) === n);
}

export function createFirewallComponent(
  ctx: AgentContext,
  options: FirewallComponentOptions = {},
): FirewallComponent {
  const db = ctx.qubesdb;
  const applier =
    options.applier ?? createNftApplier(options.netns === undefined ? {} : { netns: options.netns });
  const cache = new HostCache(options.lookup ?? createDnsLookup(options.dnsServers), options.resolverTimings);
  const compileOptions =
    options.clientInterfaces === undefined ? {} : { clientInterfaces: options.clientInterfaces };
  const statuses = new Map<string, FirewallVmStatus>();
  /** the names each VM's rules use: the DNS cache keeps only those */
  const namesInUse = new Map<string, readonly string[]>();
  const useNames = (n: string, keys: readonly string[]) => {
    if (keys.length === 0) namesInUse.delete(n);
    else namesInUse.set(n, keys);
    cache.retain(new Set([...namesInUse.values()].flat()));
  };
  const timers = new Map<string, NodeJS.Timeout>();
  /** every step runs alone: a full reload never interleaves with a one-VM update */
  let queue: Promise<unknown> = Promise.resolve();
  let loaded = false;

  const serialize = <T>(step: () => Promise<T>): Promise<T> => {
    const next = queue.then(step, step);
    queue = next.catch(() => undefined);
    return next;
  };

  const requestSync =
    options.requestSync ??
    ((key: string) => {
      void component.sync(key).catch((error: unknown) => {
        ctx.log.warn("Cannot refresh firewall rules", { vm: key, reason: describeError(error) });
      });
    });

  const schedule = (n: string, at: number | undefined): void => {
    clearTimeout(timers.get(n));
    timers.delete(n);
    if (at === undefined) return;
    const timer = setTimeout(() => requestSync(n), Math.max(0, at - ctx.now()));
    timer.unref();
    timers.set(n, timer);
  };

  /** Current facts of N, or `undefined` when its signal key is gone. Never throws for bad input. */
  const readFacts = async (n: string): Promise<Facts | undefined> => {
    const family = familyOf(n);
    if ((await db.readText(firewallSignalKey(n))) === undefined) return undefined;
    const entries = await db.multiread(firewallRulesPrefix(n));
    // latin1 maps every byte to one character, so binary values reach the parser and its message shows them
    const text = new Map([...entries].map(([key, value]) => [key, value.toString("latin1")]));
    let rules: ReturnType<typeof parseQubesDbRuleSet>;
    try {
      rules = parseQubesDbRuleSet(text, family);
    } catch (error) {
      const empty = new Map<string, string[]>();
      const blocked = describeError(error);
      return {
        input: { address: n, blocked },
        rules: 0,
        resolved: empty,
        refreshAt: undefined,
        invalid: true,
      };
    }
    const hosts = rules.flatMap((r) => (r.dsthost === undefined ? [] : [r.dsthost]));
    useNames(
      n,
      hosts.map((h) => cacheKey(family, h)),
    );
    // bounded: a dead DNS server costs this VM a re-sync later, not every VM a wait now
    const dns = await cache.resolveHosts(family, hosts, ctx.now(), {
      waitMs: options.dnsWaitMs ?? DEFAULT_DNS_WAIT_MS,
      onLate: () => requestSync(n),
    });
    const unresolved = findUnresolvedDrop(rules, dns.resolved);
    const rule = unresolved === undefined ? undefined : rules[unresolved.index];
    const blocked =
      unresolved === undefined || rule === undefined
        ? undefined
        : `Cannot resolve "${unresolved.host}" of drop rule "${formatQubesDbRule(rule)}": ${dns.failed.get(unresolved.host) ?? "no answer"} (the VM stays blocked until it resolves)`;
    return {
      input: blocked === undefined ? { address: n, rules, resolved: dns.resolved } : { address: n, blocked },
      rules: rules.length,
      resolved: dns.resolved,
      refreshAt: dns.refreshAt,
      invalid: false,
    };
  };

  const blockedReason = (facts: Facts, compiled: string | undefined): string | undefined =>
    "blocked" in facts.input ? facts.input.blocked : compiled;

  /** Publishes the outcome of one attempt and remembers it for `status()`. */
  const finish = async (
    n: string,
    facts: Facts,
    generation: number | undefined,
    error: string | undefined,
  ) => {
    schedule(n, facts.refreshAt);
    await exportResolved(db, n, facts.resolved);
    await reportAttempt(db, n, error);
    statuses.set(n, {
      state: error === undefined ? "enforcing" : "blocked",
      rules: facts.rules,
      ...(generation === undefined ? {} : { generation: formatGeneration(generation) }),
      ...(error === undefined ? {} : { error }),
      ...(facts.refreshAt === undefined ? {} : { dnsRefreshAt: facts.refreshAt }),
    });
    if (error === undefined) ctx.log.info("Applied firewall rules", { vm: n, rules: facts.rules });
    else ctx.log.error("Blocked VM: cannot apply its firewall rules", { vm: n, reason: error });
  };

  const forget = async (n: string): Promise<void> => {
    schedule(n, undefined);
    statuses.delete(n);
    useNames(n, []);
    await removeReports(db, n);
    ctx.log.info("Removed firewall rules", { vm: n });
  };

  const syncOne = async (n: string): Promise<void> => {
    const family = familyOf(n);
    const facts = await readFacts(n);
    if (facts === undefined) {
      await applier.apply(compileRemovalScript(family, n));
      return forget(n);
    }
    const { script, vm } = compileVmScript(family, facts.input);
    try {
      await applier.apply(script);
    } catch (error) {
      // fail closed first (its own transaction), then report
      await applier.apply(compileVmScript(family, { address: n, blocked: "apply failed" }).script);
      const reason = `Cannot apply the firewall rules of "${n}": ${describeError(error)}`;
      await finish(n, facts, undefined, reason);
      throw new Error(reason, { cause: error });
    }
    const reason = blockedReason(facts, vm.blocked);
    await finish(n, facts, vm.generation, reason);
    if (facts.invalid) throw new PermanentSyncError(reason);
  };

  const syncAllNow = async (keys: readonly string[]): Promise<void> => {
    const addresses = [...new Set(keys)].filter(isNativeAddress).sort();
    const facts = new Map<string, Facts | undefined>();
    await Promise.all(addresses.map(async (n) => facts.set(n, await readFacts(n))));
    const present = addresses.filter((n) => facts.get(n) !== undefined);
    const inputs = (family: Family) =>
      present.filter((n) => familyOf(n) === family).map((n) => facts.get(n)?.input as VmInput);
    const full4 = compileFullScript(4, inputs(4), compileOptions);
    const full6 = compileFullScript(6, inputs(6), compileOptions);
    try {
      await applier.apply(full4.script + full6.script);
    } catch (error) {
      // one VM's rules broke the whole transaction: block everyone, then converge VM by VM
      const blockAll = (family: Family) =>
        compileFullScript(
          family,
          inputs(family).map((i) => ({ address: i.address, blocked: "reload failed" })),
          compileOptions,
        ).script;
      await applier.apply(blockAll(4) + blockAll(6));
      ctx.log.error("Cannot reload all firewall rules at once; applying VM by VM", {
        reason: describeError(error),
      });
      loaded = true;
      for (const n of addresses) await syncOne(n).catch(() => undefined);
      return;
    }
    loaded = true;
    const compiled = new Map([...full4.vms, ...full6.vms].map((vm) => [vm.address, vm]));
    for (const n of addresses) {
      const f = facts.get(n);
      if (f === undefined) await forget(n);
      else await finish(n, f, compiled.get(n)?.generation, blockedReason(f, compiled.get(n)?.blocked));
    }
  };

  const component: FirewallComponent = {
    name: "firewall",
    watches: [FIREWALL_PREFIX],
    keysForEvent(path) {
      const n = parseFirewallSignalKey(path);
      return n !== undefined && isNativeAddress(n) ? [n] : [];
    },
    async listKeys() {
      const signals = (await db.list(FIREWALL_PREFIX)).flatMap((k) => parseFirewallSignalKey(k) ?? []);
      // addresses we published about earlier but whose signal is gone must be cleaned up too
      const reported = await listReportedAddresses(db);
      return [...new Set([...signals, ...reported])].filter(isNativeAddress).sort();
    },
    sync(key) {
      return serialize(async () => {
        if (!loaded) return syncAllNow([...(await component.listKeys()), key]);
        return syncOne(key);
      });
    },
    syncAll(keys) {
      return serialize(() => syncAllNow(keys));
    },
    status() {
      return Object.fromEntries(statuses);
    },
    close() {
      for (const n of [...timers.keys()]) schedule(n, undefined);
      applier.close?.();
    },
  };
  return component;
}

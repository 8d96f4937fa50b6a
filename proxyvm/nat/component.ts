/**
 * The NAT data plane as a reconcile-loop component (component.ts). Keys are
 * vif names, plus `@antispoof` for the ProxyVM-wide connected-address sets.
 * `sync` reads every fact fresh (the state store for the hook's facts, QubesDB
 * for the rest), plans, applies, and records the outcome for `status`.
 */

import { describeError } from "../../shared/errors.js";
import {
  CONNECTED_IPS_KEY,
  CONNECTED_IPS6_KEY,
  joinConnectedIps,
  MAPPED_IP_PREFIX,
  NETVM_GATEWAY_KEY,
  NETVM_GATEWAY6_KEY,
} from "../../shared/keys.js";
import { isIPv4, isIPv6, normalizeIPv6 } from "../../shared/net/ip.js";
import { type AgentComponent, type AgentContext, PermanentSyncError } from "../component.js";
import { type DesiredVif, planDesiredVif, type VifDbFacts, type VifEvent } from "../desired.js";
import type { VifStore } from "../state.js";
import { createAllowList } from "./allow-list.js";
import { planConnected } from "./antispoof.js";
import { applyVif, observeStructure } from "./apply.js";
import { ANTISPOOF_KEY, isVifName, natNetnsName, OWNED_ALIAS, vifOfNetns } from "./names.js";
import { type ObservedStructure, planVif } from "./plan.js";
import type { NatSystem } from "./system.js";

export interface VifStatus {
  vif: string;
  native?: string | undefined;
  native6?: string | undefined;
  visible?: string | undefined;
  visible6?: string | undefined;
  namespace?: string | undefined;
  state: "forwarding" | "blocked" | "removed" | "pending" | "error";
  lastError?: string | undefined;
}

export interface NatComponent extends AgentComponent {
  /** Records a hook event (persisted before it is acted on) and returns the key to converge. */
  recordEvent(event: VifEvent): string;
  /** Keys to mark for a kernel link event: only vifs this component knows or owns. */
  keysForLink(name: string): string[];
  /** Writes deferred allow-list removals now (before a one-shot hook or the daemon exits). */
  flush(): Promise<void>;
  /**
   * Daemon only: from now on, a fake-IP vif whose Xen vif leaves its NAT
   * namespace (the VM is gone, no `offline` came) is passed to `mark`.
   */
  watchNamespaces(mark: (key: string) => void): void;
  /** Closes every namespace watch (the daemon stops). */
  close(): void;
}

export interface NatComponentOptions {
  readonly system: NatSystem;
  readonly store: VifStore;
}

async function readFacts(ctx: AgentContext, ip: string): Promise<VifDbFacts> {
  const db = ctx.qubesdb;
  const mapped = `${MAPPED_IP_PREFIX}${ip}/`;
  const [visibleIp, visibleGateway, visibleIp6, visibleGateway6, netvmGateway, netvmGateway6] =
    await Promise.all([
      db.readText(`${mapped}visible-ip`),
      db.readText(`${mapped}visible-gateway`),
      db.readText(`${mapped}visible-ip6`),
      db.readText(`${mapped}visible-gateway6`),
      db.readText(NETVM_GATEWAY_KEY),
      db.readText(NETVM_GATEWAY6_KEY),
    ]);
  return { visibleIp, visibleGateway, visibleIp6, visibleGateway6, netvmGateway, netvmGateway6 };
}

function describe(desired: DesiredVif, event: VifEvent | undefined): Omit<VifStatus, "state"> {
  if (desired.kind === "plain" || desired.kind === "fake") {
    return {
      vif: desired.vif,
      native: desired.native.ip,
      native6: desired.native.ip6,
      visible: desired.kind === "fake" ? desired.visible.ip : desired.native.ip,
      visible6: desired.kind === "fake" ? desired.visible.ip6 : desired.native.ip6,
      namespace: desired.kind === "fake" ? natNetnsName(desired.vif) : undefined,
    };
  }
  return { vif: desired.vif, native: event?.ip, native6: event?.ip6 };
}

export function createNatComponent(ctx: AgentContext, options: NatComponentOptions): NatComponent {
  const { system, store } = options;
  /**
   * Native → visible of every fake-IP VM, for the ICMP inner-rewrite maps,
   * which every allow-list transaction rewrites whole. Seeded from the kernel
   * (`seedInner`) so a one-shot hook or a restarted agent keeps the entries of
   * VMs it has not converged yet.
   */
  const inner4 = new Map<string, string>();
  const inner6 = new Map<string, string>();
  let seeded = false;
  const seedInner = async () => {
    if (seeded) return;
    seeded = true;
    const maps = await system.readInnerMaps();
    for (const [n, v] of maps.v4) if (!inner4.has(n)) inner4.set(n, v);
    for (const [n, v] of maps.v6) if (!inner6.has(n)) inner6.set(n, v);
  };
  const allow = createAllowList((script) => system.nft(script), {
    innerMaps: () => ({ v4: [...inner4], v6: [...inner6] }),
    onError: (error) =>
      ctx.log.warn("deferred allow-list removal failed, kept for the next change", {
        error: describeError(error),
      }),
  });
  const statuses = new Map<string, VifStatus>();
  /**
   * What each vif was last converged from (desired state + the shape observed
   * after applying). Our own steps raise link events that mark the vif dirty
   * again; when nothing changed the repeat sync then costs one netlink read.
   * Cleared by `listKeys` (start, SIGHUP): a full resync re-applies everything.
   */
  const converged = new Map<string, string>();
  /**
   * QubesDB facts per vif, kept while no QubesDB event arrived: our own link
   * changes raise link events that resync the vif, and such a resync then
   * reads nothing (a multi-key read costs more than the check itself).
   * `factsEpoch` moves with every watched QubesDB event and every full resync.
   */
  const factsCache = new Map<string, { ip: string; epoch: number; facts: VifDbFacts }>();
  let factsEpoch = 0;
  const factsFor = async (vif: string, ip: string): Promise<VifDbFacts> => {
    const cached = factsCache.get(vif);
    if (cached !== undefined && cached.epoch === factsEpoch && cached.ip === ip) return cached.facts;
    const epoch = factsEpoch;
    const facts = await readFacts(ctx, ip);
    factsCache.set(vif, { ip, epoch, facts });
    return facts;
  };
  /** Moved by each hook event of a vif: a sync that began before it must not apply what it read. */
  const generations = new Map<string, number>();
  /**
   * Daemon only: one watch per fake-IP vif on its NAT namespace, for the
   * removal of Xen's vif in there; `vanished` holds the vifs it reported.
   */
  let mark: ((key: string) => void) | undefined;
  const watches = new Map<string, { close(): void }>();
  const vanished = new Set<string>();
  const unwatch = (vif: string) => {
    watches.get(vif)?.close();
    watches.delete(vif);
  };
  const watch = (vif: string) => {
    if (mark === undefined || watches.has(vif)) return;
    try {
      watches.set(
        vif,
        system.watchLinkRemoval(natNetnsName(vif), vif, () => {
          ctx.log.info("vif left its NAT namespace (the VM is gone)", { vif });
          vanished.add(vif);
          mark?.(vif);
        }),
      );
    } catch (error) {
      ctx.log.warn("cannot watch the NAT namespace (a VM gone without offline is found at the next resync)", {
        vif,
        error: describeError(error),
      });
    }
  };

  async function syncAntispoof(): Promise<void> {
    // One multiread covers both families and dom0's numbered continuations.
    const entries = new Map<string, string>();
    for (const [key, value] of await ctx.qubesdb.multiread(CONNECTED_IPS_KEY)) {
      entries.set(key, value.toString("utf8"));
    }
    let connected4: string[];
    let connected6: string[];
    try {
      connected4 = joinConnectedIps(entries, 4);
      connected6 = joinConnectedIps(entries, 6);
    } catch (error) {
      // Fail closed would mean dropping the uplink; instead keep the last good sets and report.
      throw new PermanentSyncError(describeError(error), { cause: error });
    }
    await system.nft(planConnected(connected4, connected6));
    await system.addIcmpInnerRules();
    // The table is declared and the inner maps are known: the first vif's change only adds elements.
    if (!seeded) {
      await seedInner();
      allow.adopt({ v4: [...inner4], v6: [...inner6] });
    }
  }

  async function syncVif(vif: string): Promise<void> {
    const generation = generations.get(vif);
    let record = store.get(vif);
    const event = record?.event;
    const facts = event?.online === true ? await factsFor(vif, event.ip) : {};
    if (event?.online !== true) factsCache.delete(vif);
    const desired = planDesiredVif(vif, event, facts);
    const base = describe(desired, event);
    const fingerprint = async (observed?: ObservedStructure) =>
      JSON.stringify([desired, observed ?? (await observeStructure(system, vif)), record?.applied]);
    const observed = await observeStructure(system, vif);
    // a vif reported gone from its namespace is re-applied, which finds it gone and removes everything
    const forced = vanished.delete(vif);
    if (!forced && converged.get(vif) === (await fingerprint(observed))) return;
    converged.delete(vif);
    await seedInner();
    // A hook event arrived meanwhile: its own sync (queued by it) applies the newer state.
    if (generations.get(vif) !== generation) return;
    for (const n of [event?.ip, record?.applied?.ip]) if (n !== undefined) inner4.delete(n);
    for (const n of [event?.ip6, record?.applied?.ip6]) if (n !== undefined) inner6.delete(n);
    if (desired.kind === "fake") {
      inner4.set(desired.native.ip, desired.visible.ip);
      if (desired.native.ip6 !== undefined && desired.visible.ip6 !== undefined) {
        inner6.set(desired.native.ip6, desired.visible.ip6);
      }
    }
    try {
      // What may be in the allow-list: what was recorded as applied, else, when
      // removing (a kill between adding the entry and recording it), the
      // event's own addresses, when they are addresses at all.
      const fromEvent =
        event !== undefined && isIPv4(event.ip)
          ? {
              ip: event.ip,
              ip6: event.ip6 !== undefined && isIPv6(event.ip6) ? normalizeIPv6(event.ip6) : undefined,
            }
          : undefined;
      const removing = desired.kind === "absent" || desired.kind === "blocked";
      // the namespace watch holds the namespace: it goes before anything that may delete it
      if (desired.kind !== "fake") unwatch(vif);
      const outcome = await applyVif(
        system,
        allow,
        desired,
        record?.applied ?? (removing ? fromEvent : undefined),
        observed,
      );
      if (outcome.result === "applied" && desired.kind === "fake") watch(vif);
      else unwatch(vif);
      if (outcome.result === "applied") {
        if (event !== undefined) store.put(vif, { event, applied: outcome.applied });
        record = store.get(vif);
        converged.set(vif, await fingerprint(outcome.shape));
        statuses.set(vif, { ...base, state: "forwarding" });
      } else if (outcome.result === "blocked") {
        if (event !== undefined) store.put(vif, { event });
        const reason = desired.kind === "blocked" ? desired.reason : "blocked";
        statuses.set(vif, { ...base, state: "blocked", lastError: reason });
        throw new PermanentSyncError(reason);
      } else {
        store.remove(vif);
        statuses.delete(vif);
        if (outcome.result === "gone") ctx.log.info("vif gone, removed", { vif });
      }
    } catch (error) {
      if (!(error instanceof PermanentSyncError)) {
        statuses.set(vif, { ...base, state: "error", lastError: describeError(error) });
      }
      throw error;
    }
  }

  return {
    name: "nat",
    watches: [
      MAPPED_IP_PREFIX,
      NETVM_GATEWAY_KEY,
      NETVM_GATEWAY6_KEY,
      CONNECTED_IPS_KEY,
      CONNECTED_IPS6_KEY,
      `${CONNECTED_IPS_KEY}/`,
      `${CONNECTED_IPS6_KEY}/`,
    ],
    keysForEvent(path) {
      factsEpoch++;
      if (
        path === CONNECTED_IPS_KEY ||
        path === CONNECTED_IPS6_KEY ||
        path.startsWith(`${CONNECTED_IPS_KEY}/`) ||
        path.startsWith(`${CONNECTED_IPS6_KEY}/`)
      ) {
        return [ANTISPOOF_KEY];
      }
      const vifs = [...store.all().values()].filter((r) => r.event.online);
      if (path === NETVM_GATEWAY_KEY || path === NETVM_GATEWAY6_KEY) return vifs.map((r) => r.event.vif);
      if (!path.startsWith(MAPPED_IP_PREFIX)) return [];
      const ip = path.slice(MAPPED_IP_PREFIX.length).split("/")[0] ?? "";
      if (!isIPv4(ip)) return [];
      return vifs.filter((r) => r.event.ip === ip).map((r) => r.event.vif);
    },
    async listKeys() {
      // Everything known or owned: recorded vifs and our veth ends (whose NAT
      // namespace is then ours too); orphans are removed by their sync. Named
      // namespaces are host-wide (/run/netns), so one merely named `vif*-nat`
      // may belong to another ProxyVM namespace on this host (the lab, tests):
      // it is never adopted by name alone (only with our mark on its loopback).
      converged.clear();
      factsEpoch++;
      const keys = new Set<string>([ANTISPOOF_KEY, ...store.all().keys()]);
      for (const link of await system.listLinks()) {
        if (link.alias === OWNED_ALIAS && isVifName(link.name)) keys.add(link.name);
      }
      // a NAT namespace left with no record and no veth end (the state lost):
      // ours only when its loopback carries this ProxyVM's mark
      for (const name of system.listNetns()) {
        const vif = vifOfNetns(name);
        if (vif !== undefined && !keys.has(vif) && (await system.namespaceOwner(name)) === system.owner) {
          keys.add(vif);
        }
      }
      return [...keys];
    },
    async sync(key) {
      if (key === ANTISPOOF_KEY) return syncAntispoof();
      return syncVif(key);
    },
    status() {
      return Object.fromEntries([...statuses].map(([vif, status]) => [vif, status]));
    },
    async warmUp() {
      // QubesDB reads and both planners on a made-up vif (pure or read-only), then the kernel paths
      const facts = await readFacts(ctx, "192.0.2.2");
      const desired = planDesiredVif(
        "vif0.0",
        { vif: "vif0.0", ip: "192.0.2.2", online: true },
        { ...facts, visibleIp: "192.0.2.3", visibleGateway: "192.0.2.1", netvmGateway: "192.0.2.4" },
      );
      if (desired.kind === "fake") planVif(desired, { freshNamespace: true });
      await system.warmUp();
    },
    flush: () => allow.flush(),
    watchNamespaces(marker) {
      mark = marker;
    },
    close() {
      for (const vif of [...watches.keys()]) unwatch(vif);
    },
    keysForLink(name) {
      if (!isVifName(name)) return [];
      return store.get(name) !== undefined ? [name] : [];
    },
    recordEvent(event) {
      generations.set(event.vif, (generations.get(event.vif) ?? 0) + 1);
      store.put(event.vif, { event, applied: store.get(event.vif)?.applied });
      converged.delete(event.vif);
      statuses.set(event.vif, { vif: event.vif, native: event.ip, native6: event.ip6, state: "pending" });
      return event.vif;
    },
  };
}

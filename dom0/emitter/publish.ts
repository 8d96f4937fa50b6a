/**
 * Publishing: the I/O around plan and apply. Finds the running VMs (their
 * QubesDB socket accepts a connection), loads firewall rules, plans, and
 * applies to the VMs that need it. Callers hold the store lock, so two
 * publishers never interleave (docs/dom0.md).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { describeError } from "../../shared/errors.js";
import type { FirewallRule } from "../../shared/firewall/index.js";
import type { Logger } from "../../shared/log.js";
import { silentLogger } from "../../shared/log.js";
import { connectQubesDb } from "../../shared/qubesdb/client.js";
import { DEFAULT_RUN_DIR } from "../../shared/qubesdb/socket.js";
import type { QubesDbClient } from "../../shared/qubesdb/types.js";
import { firewallXmlPath, loadFirewall, nextExpiry } from "../firewall/index.js";
import type { Collection } from "../model/collection.js";
import { netvmOf } from "../model/network.js";
import { type ApplyCounts, applyVmKeys } from "./apply.js";
import { type KeyMap, planKeys, sameKeys } from "./plan.js";

export interface PublishContext {
  readonly qubesDir: string;
  /** where `qubesdb.NAME.sock` live (`$QUBESDB_RUN_DIR`, default /var/run/qubes) */
  readonly runDir: string;
  /** UNIX seconds */
  readonly now: number;
  readonly log?: Logger;
}

export interface PublishReport extends ApplyCounts {
  /** VMs whose DB was compared (and changed where needed) */
  vms: number;
  /** one line per VM that could not be published */
  errors: string[];
  /** publishAll only: the earliest future expiry among the loaded rules (UNIX seconds) */
  nextExpiry?: number;
}

export function resolveRunDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env["QUBESDB_RUN_DIR"] || DEFAULT_RUN_DIR;
}

export function socketPathOf(runDir: string, vmName: string): string {
  return join(runDir, `qubesdb.${vmName}.sock`);
}

/** Connects to every VM whose RW QubesDB socket accepts a connection: those are the running ones. */
export async function connectRunning(
  runDir: string,
  names: Iterable<string>,
): Promise<Map<string, QubesDbClient>> {
  const clients = new Map<string, QubesDbClient>();
  await Promise.all(
    [...names].map(async (name) => {
      const path = socketPathOf(runDir, name);
      try {
        const client = await connectQubesDb({ socket: path, reconnect: false });
        // A VM whose RW socket is gone but whose read-only one answers is
        // not one dom0 can publish to.
        if (client.connectedPath !== path) await client.close();
        else clients.set(name, client);
      } catch {
        // Not running.
      }
    }),
  );
  return clients;
}

export async function closeAll(clients: ReadonlyMap<string, QubesDbClient>): Promise<void> {
  await Promise.all([...clients.values()].map((client) => client.close().catch(() => undefined)));
}

/**
 * Parsed firewall.xml files by path, with the (inode, size, mtime) they were
 * parsed from. Saves replace the file by a rename (new inode), so a changed
 * file is always parsed again; a long-running `serve` then parses only the
 * files that changed (parsing 299 files costs most of a full publication).
 */
const firewallCache = new Map<string, { signature: string; rules: FirewallRule[] }>();

async function loadFirewallCached(qubesDir: string, vmName: string): Promise<FirewallRule[]> {
  const path = firewallXmlPath(qubesDir, vmName);
  // stat before reading: if the file is replaced in between, the new rules are
  // cached under the old signature and simply parsed again next time.
  const signature = await stat(path).then(
    (info) => `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`,
    () => undefined,
  );
  const hit = firewallCache.get(path);
  if (signature !== undefined && hit?.signature === signature) return hit.rules;
  const rules = await loadFirewall(qubesDir, vmName);
  if (signature === undefined) firewallCache.delete(path);
  else firewallCache.set(path, { signature, rules });
  return rules;
}

/**
 * Firewall rules of every running VM that has a netvm (only they are
 * published). A file that cannot be read gives no rules at all: the published
 * set is then `policy=drop` alone and the VM is blocked (fail closed).
 */
export async function loadRunningFirewalls(
  qubesDir: string,
  collection: Collection,
  running: ReadonlySet<string>,
  log: Logger,
): Promise<Map<string, FirewallRule[]>> {
  const rules = new Map<string, FirewallRule[]>();
  await Promise.all(
    [...collection.vms.values()]
      .filter((vm) => running.has(vm.name) && netvmOf(collection, vm) !== undefined)
      .map(async (vm) => {
        try {
          rules.set(vm.name, await loadFirewallCached(qubesDir, vm.name));
        } catch (error) {
          log.error("firewall rules unreadable, blocking the qube", {
            vm: vm.name,
            error: describeError(error),
          });
          rules.set(vm.name, []);
        }
      }),
  );
  return rules;
}

/** Applies `plan` to the VMs named in `targets` (those that run); errors are collected, not thrown. */
export async function applyPlan(
  plan: ReadonlyMap<string, KeyMap>,
  clients: ReadonlyMap<string, QubesDbClient>,
  targets: Iterable<string>,
  log: Logger,
): Promise<PublishReport> {
  const report: PublishReport = { vms: 0, writes: 0, removes: 0, errors: [] };
  await Promise.all(
    [...new Set(targets)].map(async (name) => {
      const client = clients.get(name);
      const desired = plan.get(name);
      if (client === undefined || desired === undefined) return;
      try {
        const counts = await applyVmKeys(client, desired);
        report.vms++;
        report.writes += counts.writes;
        report.removes += counts.removes;
        if (counts.writes + counts.removes > 0) {
          log.info("published", { vm: name, writes: counts.writes, removes: counts.removes });
        }
      } catch (error) {
        report.errors.push(`Cannot publish to "${name}": ${describeError(error)}`);
      }
    }),
  );
  return report;
}

/** Publishes every running VM's keys once (`qubes-fakeip-dom0 sync`). */
export async function publishAll(ctx: PublishContext, collection: Collection): Promise<PublishReport> {
  const log = ctx.log ?? silentLogger;
  const clients = await connectRunning(ctx.runDir, collection.vms.keys());
  try {
    const running = new Set(clients.keys());
    const firewall = await loadRunningFirewalls(ctx.qubesDir, collection, running, log);
    const plan = planKeys({ collection, firewall, now: ctx.now, running });
    const report = await applyPlan(plan, clients, plan.keys(), log);
    let next: number | undefined;
    for (const rules of firewall.values()) {
      const at = nextExpiry(rules, ctx.now);
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    if (next !== undefined) report.nextExpiry = next;
    return report;
  } finally {
    await closeAll(clients);
  }
}

export interface ChangeOptions {
  /** VMs the change was made to: they and their netvms (before and after) are always compared */
  readonly touched: readonly string[];
  /** rules of a VM before a qvm-firewall change (default: the rules on disk now) */
  readonly firewallBefore?: ReadonlyMap<string, readonly FirewallRule[]>;
}

/**
 * Publishes one change (a `qvm-*` command): plans before and after, and
 * applies to every running VM whose planned keys differ (a template's
 * feature reaches all its VMs, a netvm change both old and new netvm), plus
 * the touched VMs and their netvms.
 */
export async function publishChange(
  ctx: PublishContext,
  before: Collection,
  after: Collection,
  options: ChangeOptions,
): Promise<PublishReport> {
  const log = ctx.log ?? silentLogger;
  const clients = await connectRunning(ctx.runDir, new Set([...before.vms.keys(), ...after.vms.keys()]));
  try {
    const running = new Set(clients.keys());
    const firewall = await loadRunningFirewalls(ctx.qubesDir, after, running, log);
    const firewallBefore = new Map<string, readonly FirewallRule[]>(firewall);
    for (const [name, rules] of options.firewallBefore ?? []) firewallBefore.set(name, rules);
    const planBefore = planKeys({ collection: before, firewall: firewallBefore, now: ctx.now, running });
    const planAfter = planKeys({ collection: after, firewall, now: ctx.now, running });
    const targets = new Set<string>();
    for (const [name, keys] of planAfter) if (!sameKeys(keys, planBefore.get(name))) targets.add(name);
    for (const name of options.touched) {
      targets.add(name);
      for (const c of [before, after]) {
        const vm = c.vms.get(name);
        const netvm = vm === undefined ? undefined : netvmOf(c, vm);
        if (netvm !== undefined) targets.add(netvm.name);
      }
    }
    return await applyPlan(planAfter, clients, targets, log);
  } finally {
    await closeAll(clients);
  }
}

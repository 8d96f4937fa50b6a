/**
 * The emitter's applier: makes one VM's QubesDB hold exactly the planned
 * dom0-owned keys, with the fewest requests. It reads what the DB holds
 * (multiread), writes what differs, removes what is no longer wanted, and
 * republishes a client's firewall rules only when they changed, in the order
 * of keys.md: (1) remove `/qubes-firewall/N/`, (2) write policy and rules,
 * (3) write the signal `/qubes-firewall/N` = "" last.
 *
 * Requests are pipelined (the client keeps FIFO order on one socket and the
 * daemon answers in order), so a VM costs a few round trips, not one per key.
 */
import { FIREWALL_PREFIX } from "../../shared/keys.js";
import type { QubesDbClient } from "../../shared/qubesdb/types.js";
import { DOM0_READ_PREFIXES, isDom0Key } from "./owned-keys.js";
import { type KeyMap, sameKeys } from "./plan.js";

export interface ApplyCounts {
  writes: number;
  removes: number;
}

/** Reads every dom0-owned key the DB holds now. */
export async function readDom0Keys(client: QubesDbClient): Promise<KeyMap> {
  const parts = await Promise.all(DOM0_READ_PREFIXES.map((prefix) => client.multiread(prefix)));
  const keys: KeyMap = new Map();
  for (const part of parts) {
    for (const [key, value] of part) if (isDom0Key(key)) keys.set(key, value.toString("utf8"));
  }
  return keys;
}

interface FirewallGroup {
  signal: boolean;
  rules: KeyMap;
}

/** Splits keys into plain ones and firewall groups by address (`/qubes-firewall/N` and below). */
function split(keys: ReadonlyMap<string, string>): { plain: KeyMap; firewall: Map<string, FirewallGroup> } {
  const plain: KeyMap = new Map();
  const firewall = new Map<string, FirewallGroup>();
  for (const [key, value] of keys) {
    if (!key.startsWith(FIREWALL_PREFIX)) {
      plain.set(key, value);
      continue;
    }
    const rest = key.slice(FIREWALL_PREFIX.length);
    const slash = rest.indexOf("/");
    const address = slash < 0 ? rest : rest.slice(0, slash);
    let group = firewall.get(address);
    if (group === undefined) {
      group = { signal: false, rules: new Map() };
      firewall.set(address, group);
    }
    if (slash < 0) group.signal = true;
    else group.rules.set(key, value);
  }
  return { plain, firewall };
}

/** Brings one VM's DB to `desired`; `observed` (from readDom0Keys) may be passed when already read. */
export async function applyVmKeys(
  client: QubesDbClient,
  desired: ReadonlyMap<string, string>,
  observed?: ReadonlyMap<string, string>,
): Promise<ApplyCounts> {
  const have = split(observed ?? (await readDom0Keys(client)));
  const want = split(desired);
  const counts: ApplyCounts = { writes: 0, removes: 0 };
  const pending: Array<Promise<unknown>> = [];
  const write = (key: string, value: string) => {
    counts.writes++;
    pending.push(client.write(key, value));
  };
  const remove = (key: string) => {
    counts.removes++;
    pending.push(client.rm(key));
  };

  for (const [key, value] of want.plain) if (have.plain.get(key) !== value) write(key, value);
  for (const key of have.plain.keys()) if (!want.plain.has(key)) remove(key);

  const signals: string[] = [];
  for (const [address, group] of want.firewall) {
    const old = have.firewall.get(address);
    if (old?.signal && sameKeys(old.rules, group.rules)) continue;
    // (1) Stale rule keys go first; skipped when the DB holds none.
    if (old !== undefined && old.rules.size > 0) remove(`${FIREWALL_PREFIX}${address}/`);
    // (2) Policy and rules.
    for (const [key, value] of group.rules) write(key, value);
    signals.push(`${FIREWALL_PREFIX}${address}`);
  }
  for (const [address, group] of have.firewall) {
    if (want.firewall.has(address)) continue;
    if (group.rules.size > 0) remove(`${FIREWALL_PREFIX}${address}/`);
    if (group.signal) remove(`${FIREWALL_PREFIX}${address}`);
  }
  await Promise.all(pending);
  // (3) Signals only after every rule write was acknowledged, so a reader that
  // acts on the signal always finds the complete rule set.
  pending.length = 0;
  for (const key of signals) write(key, "");
  await Promise.all(pending);
  return counts;
}

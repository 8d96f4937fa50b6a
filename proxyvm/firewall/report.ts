/**
 * What the agent publishes about a VM's firewall (spec/keys.md, "Written by
 * the ProxyVM agent"): the last error, the attempt counter and the resolved
 * addresses of its DNS names. People and tools read them; dom0 logic never does.
 */
import {
  DNS_PREFIX,
  dnsKey,
  FIREWALL_ERROR_PREFIX,
  FIREWALL_HANDLED_PREFIX,
  firewallErrorKey,
  firewallHandledKey,
} from "../../shared/keys.js";
import type { QubesDbClient } from "../../shared/qubesdb/types.js";

/** The error key holds one line of printable text of at most this many characters (keys.ts schema). */
const MAX_ERROR_LENGTH = 1024;

export function oneLine(text: string): string {
  const line = text
    .replace(/[\x00-\x1f\x7f]+/g, " ")
    .replace(/ {2,}/g, " ")
    .trim();
  return line.length > MAX_ERROR_LENGTH ? `${line.slice(0, MAX_ERROR_LENGTH - 3)}...` : line;
}

/** `/qubes-firewall-error/N` = reason (empty on success), then `/qubes-firewall-handled/N` += 1. */
export async function reportAttempt(
  db: QubesDbClient,
  n: string,
  error: string | undefined,
): Promise<number> {
  await db.write(firewallErrorKey(n), error === undefined ? "" : oneLine(error));
  const previous = Number.parseInt((await db.readText(firewallHandledKey(n))) ?? "0", 10);
  const handled = (Number.isSafeInteger(previous) && previous >= 0 ? previous : 0) + 1;
  await db.write(firewallHandledKey(n), String(handled));
  return handled;
}

/** Writes `/dns/N/HOST` for each resolved name (skipping keys over the length limit) and removes stale ones. */
export async function exportResolved(
  db: QubesDbClient,
  n: string,
  resolved: ReadonlyMap<string, readonly string[]>,
): Promise<void> {
  const wanted = new Map<string, string>();
  for (const [host, addresses] of resolved) {
    const key = dnsKey(n, host);
    if (key !== undefined) wanted.set(key, addresses.join(" "));
  }
  const existing = await db.multiread(`${DNS_PREFIX}${n}/`);
  for (const key of existing.keys()) {
    if (!wanted.has(key)) await db.rm(key);
  }
  for (const [key, value] of wanted) {
    if (existing.get(key)?.toString() !== value) await db.write(key, value);
  }
}

/** Removes everything published about N (the VM is gone: nothing accumulates, Qubes issue 6733). */
export async function removeReports(db: QubesDbClient, n: string): Promise<void> {
  await db.rm(`${DNS_PREFIX}${n}/`);
  await db.rm(firewallErrorKey(n));
  await db.rm(firewallHandledKey(n));
}

/** Addresses something was published about (error, counter or DNS keys), to clean up after a restart. */
export async function listReportedAddresses(db: QubesDbClient): Promise<string[]> {
  const found = new Set<string>();
  for (const prefix of [FIREWALL_ERROR_PREFIX, FIREWALL_HANDLED_PREFIX, DNS_PREFIX]) {
    for (const key of await db.list(prefix)) {
      const n = key.slice(prefix.length).split("/")[0];
      if (n !== undefined && n !== "") found.add(n);
    }
  }
  return [...found];
}

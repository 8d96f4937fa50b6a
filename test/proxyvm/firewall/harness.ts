/**
 * Drives the firewall component the way the agent's reconcile loop does
 * (watch → keysForEvent → sync), against a real QubesDB daemon, and publishes
 * rule sets in dom0's order (spec/keys.md "Firewall publication order").
 */

import type { AgentContext } from "../../../proxyvm/component.js";
import {
  createFirewallComponent,
  type FirewallComponent,
  type FirewallComponentOptions,
} from "../../../proxyvm/firewall/index.js";
import { firewallHandledKey, firewallRulesPrefix, firewallSignalKey } from "../../../shared/keys.js";
import { createLogger, type Logger } from "../../../shared/log.js";
import type { QubesDbClient } from "../../../shared/qubesdb/types.js";
import { waitFor } from "../../helpers/netns.js";

type Tap = { teardown(fn: () => unknown): void };

export interface Driven {
  component: FirewallComponent;
  logs: string[];
  /** errors `sync` threw, in order */
  errors: unknown[];
}

export function captureLogger(lines: string[]): Logger {
  return createLogger({ level: "debug", write: (line) => lines.push(line) });
}

/** Starts a component with a full sync, then syncs every key an event names, one at a time. */
export async function startComponent(
  t: Tap,
  db: QubesDbClient,
  events: QubesDbClient,
  options: FirewallComponentOptions,
): Promise<Driven> {
  const logs: string[] = [];
  const errors: unknown[] = [];
  const ctx: AgentContext = { qubesdb: db, log: captureLogger(logs), now: () => Date.now() };
  const component = createFirewallComponent(ctx, options);
  t.teardown(() => component.close());
  for (const path of component.watches) await events.watch(path);
  await component.syncAll?.(await component.listKeys());
  let stopped = false;
  t.teardown(() => {
    stopped = true;
  });
  void (async () => {
    for await (const path of events.events()) {
      if (stopped) return;
      for (const key of component.keysForEvent(path)) {
        await component.sync(key).catch((error: unknown) => errors.push(error));
      }
    }
  })().catch(() => undefined);
  return { component, logs, errors };
}

/** dom0's order: remove the rule keys, write policy and rules, then the empty commit signal. */
export async function publishRules(
  db: QubesDbClient,
  n: string,
  rules: ReadonlyArray<string | Buffer>,
  extra: Record<string, string | Buffer> = {},
  /** `null`: publish no policy key */
  policy: string | null = "drop",
): Promise<void> {
  await db.rm(firewallRulesPrefix(n));
  if (policy !== null) await db.write(`${firewallRulesPrefix(n)}policy`, policy);
  for (const [index, rule] of rules.entries()) {
    await db.write(`${firewallRulesPrefix(n)}${String(index).padStart(4, "0")}`, rule);
  }
  for (const [name, value] of Object.entries(extra))
    await db.write(`${firewallRulesPrefix(n)}${name}`, value);
  await db.write(firewallSignalKey(n), "");
}

export async function handledCount(db: QubesDbClient, n: string): Promise<number> {
  return Number((await db.readText(firewallHandledKey(n))) ?? "0");
}

/** Waits until N's attempt counter reaches `count`; returns it. */
export async function waitHandled(
  db: QubesDbClient,
  n: string,
  count: number,
  timeoutMs = 5000,
): Promise<number> {
  await waitFor(async () => (await handledCount(db, n)) >= count, timeoutMs);
  return handledCount(db, n);
}

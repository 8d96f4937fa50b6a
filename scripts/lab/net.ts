/**
 * Network exchanges from inside a namespace, through `net-client.js` (one
 * process per batch: a Node process cannot enter another network namespace).
 */

import { runIn } from "./system.js";
import { nodeCommand } from "./tools.js";

export interface NetAction {
  readonly kind: "tcp" | "udp" | "http";
  readonly host: string;
  readonly port: number;
  /** payload (tcp/udp) or path (http) */
  readonly data?: string;
  /** source address to bind (forged-source probes) */
  readonly source?: string;
  readonly timeoutMs?: number;
  /** wait this long before the action (sequential: after the previous one; parallel: start offset) */
  readonly pauseMs?: number;
}

export interface NetResult {
  readonly ok: boolean;
  /** reply payload (echo) or body (HTTP) */
  readonly reply?: string;
  /** errno-like code (`ECONNREFUSED`, `EHOSTUNREACH`, `ETIMEDOUT`...) */
  readonly error?: string;
  /** when the action started and finished (ms since the epoch) */
  readonly startedAt?: number;
  readonly at?: number;
}

/** Runs `actions` inside `ns` (sequentially unless `parallel`). */
export async function netIn(
  ns: string,
  actions: readonly NetAction[],
  parallel = false,
): Promise<NetResult[]> {
  const [node, script] = nodeCommand("net-client");
  const out = await runIn(ns, node, [script, JSON.stringify({ parallel, actions })]);
  return JSON.parse(out) as NetResult[];
}

/** Describes a result for a person: the reply, or the error code. */
export function describeResult(result: NetResult | undefined): string {
  if (result === undefined) return "no result";
  return result.ok ? "ok" : (result.error ?? `unexpected reply ${JSON.stringify(result.reply)}`);
}

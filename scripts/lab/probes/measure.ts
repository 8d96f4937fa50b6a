/**
 * How long a change takes to show in packets: a paced sampler runs in the
 * client's namespace while the change is made; the effect time is from the
 * change command returning to the first sample after which every sample
 * shows the new behaviour. Resolution is the pace, whatever the timeouts.
 */
import { type NetAction, type NetResult, netIn } from "../net.js";

/** enough for `nsenter node net-client.js` to be sampling before the change is made */
const SAMPLER_HEAD_START_MS = 300;

export interface Effect {
  /** ms from the command returning to the change holding in packets; undefined if it never held */
  readonly ms: number | undefined;
  /** the last sample (its error says how a block looked) */
  readonly last: NetResult | undefined;
  readonly samples: number;
}

/** Pure: the effect time from timestamped samples. */
export function effectTime(
  samples: readonly NetResult[],
  changedAt: number,
  holds: (r: NetResult) => boolean,
): number | undefined {
  let from: number | undefined;
  for (const s of samples) {
    if (!holds(s)) from = undefined;
    else from ??= s.startedAt;
  }
  return from === undefined ? undefined : Math.max(0, from - changedAt);
}

export async function measureEffect(
  ns: string,
  action: NetAction,
  holds: (r: NetResult) => boolean,
  change: () => Promise<unknown>,
  options: { everyMs?: number; durationMs?: number } = {},
): Promise<Effect> {
  const every = options.everyMs ?? 25;
  const count = Math.ceil((options.durationMs ?? 2500) / every);
  const timeoutMs = Math.min(action.timeoutMs ?? 200, 200);
  const sampling = netIn(
    ns,
    Array.from({ length: count }, (_, i) => ({ ...action, timeoutMs, pauseMs: i * every })),
    true,
  );
  // Let the sampler start (a process in another namespace) before the change.
  await new Promise((resolve) => setTimeout(resolve, SAMPLER_HEAD_START_MS));
  await change();
  const changedAt = Date.now();
  const samples = (await sampling).filter((s) => (s.startedAt ?? 0) >= changedAt);
  return {
    ms: effectTime(samples, changedAt, holds),
    last: samples[samples.length - 1],
    samples: samples.length,
  };
}

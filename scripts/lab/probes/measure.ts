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
  /** how many samples of the guard action (if any) got through, over the whole window */
  readonly guardPassed: number;
  readonly guardSamples: number;
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
  options: {
    everyMs?: number;
    durationMs?: number;
    /** sampled alongside, before, during and after the change: something that must never pass */
    guard?: NetAction;
  } = {},
): Promise<Effect> {
  const every = options.everyMs ?? 25;
  const count = Math.ceil((options.durationMs ?? 2500) / every);
  const timeoutMs = Math.min(action.timeoutMs ?? 200, 200);
  const guard = options.guard;
  const sampling = netIn(
    ns,
    Array.from({ length: count }, (_, i) => [
      { ...action, timeoutMs, pauseMs: i * every },
      ...(guard === undefined ? [] : [{ ...guard, timeoutMs, pauseMs: i * every }]),
    ]).flat(),
    true,
  );
  // Let the sampler start (a process in another namespace) before the change.
  await new Promise((resolve) => setTimeout(resolve, SAMPLER_HEAD_START_MS));
  await change();
  const changedAt = Date.now();
  const all = await sampling;
  const stride = guard === undefined ? 1 : 2;
  const samples = all.filter((s, i) => i % stride === 0 && (s.startedAt ?? 0) >= changedAt);
  const guarded = guard === undefined ? [] : all.filter((_, i) => i % 2 === 1);
  return {
    ms: effectTime(samples, changedAt, holds),
    last: samples[samples.length - 1],
    samples: samples.length,
    guardPassed: guarded.filter((s) => s.ok).length,
    guardSamples: guarded.length,
  };
}

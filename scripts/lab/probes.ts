/**
 * The end-to-end probes, in the order of issue 7. Each returns
 * `{ name, ok, observed }` and never throws: a probe whose piece is missing
 * fails and says why.
 */
import { probeAgentRestart } from "./probes/agent-restart.js";
import { probeConfig } from "./probes/config.js";
import type { Probe, ProbeResult } from "./probes/context.js";
import { probeFirewall } from "./probes/firewall.js";
import { probeIsolation } from "./probes/isolation.js";
import { probeLeak } from "./probes/leak.js";
import { probeLeftovers } from "./probes/leftovers.js";
import { probeLiveChange } from "./probes/live-change.js";
import { probeSpoof } from "./probes/spoof.js";
import type { LabState } from "./state.js";

export type { Probe, ProbeResult } from "./probes/context.js";
export { findLeftovers } from "./probes/leftovers.js";

export const PROBES: ReadonlyArray<readonly [string, Probe]> = [
  ["config", probeConfig],
  ["leak", probeLeak],
  ["isolation", probeIsolation],
  ["spoof", probeSpoof],
  ["firewall", probeFirewall],
  ["live-change", probeLiveChange],
  ["agent-restart", probeAgentRestart],
  ["leftovers", probeLeftovers],
];

/** Runs the probes one after another (they share the lab), reporting each as it finishes. */
export async function runProbes(
  state: LabState,
  onResult: (r: ProbeResult) => void = () => {},
): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const [, run] of PROBES) {
    const result = await run(state);
    results.push(result);
    onResult(result);
  }
  return results;
}

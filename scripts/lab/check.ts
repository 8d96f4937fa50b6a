/** `lab check`: runs the probes against the lab in DIR; exit status = number of failures. */
import { runProbes } from "./probes.js";
import { formatProbe, formatSummary, terminalStyle } from "./report.js";
import { requireState } from "./state.js";

export async function runCheck(
  dir: string,
  options: { json: boolean; write: (line: string) => void },
): Promise<number> {
  const state = requireState(dir);
  const style = terminalStyle();
  const results = await runProbes(state, (r) => {
    if (!options.json) options.write(formatProbe(style, r));
  });
  if (options.json) options.write(JSON.stringify({ probes: results }));
  else options.write(formatSummary(style, results));
  return Math.min(results.filter((r) => !r.ok).length, 125);
}

/** How the lab talks to a person: ✓/✗ lines, colour only on a terminal (pure). */

export interface Style {
  readonly color: boolean;
}

const CODES = { green: 32, red: 31, bold: 1, dim: 2, cyan: 36 } as const;

export function paint(style: Style, code: keyof typeof CODES, text: string): string {
  return style.color ? `\u001b[${CODES[code]}m${text}\u001b[0m` : text;
}

/** One line per probe (issue 7): mark, name, time, then what was observed. */
export function formatProbe(
  style: Style,
  result: { name: string; ok: boolean; observed: string; ms?: number },
): string {
  const mark = result.ok ? paint(style, "green", "✓") : paint(style, "red", "✗");
  const took = result.ms === undefined ? "" : paint(style, "dim", ` (${(result.ms / 1000).toFixed(1)} s)`);
  return `${mark} ${paint(style, "bold", result.name)}${took}: ${result.observed}`;
}

export function formatSummary(style: Style, results: ReadonlyArray<{ ok: boolean }>): string {
  const failed = results.filter((r) => !r.ok).length;
  return failed === 0
    ? paint(style, "green", `all ${results.length} probes passed`)
    : paint(style, "red", `${failed} of ${results.length} probes failed`);
}

/** Colour when stdout is a terminal and NO_COLOR is not set (no-color.org). */
export function terminalStyle(stream: { isTTY?: boolean } = process.stdout): Style {
  return { color: stream.isTTY === true && process.env["NO_COLOR"] === undefined };
}

/**
 * A one-line progress bar for a TTY on stderr: bytes done / total and rate,
 * redrawn at most every 200 ms. Callers only create it when stderr is a TTY,
 * so piped and logged runs stay clean.
 */
import type { TarProgress } from "./tar-writer.js";

const REDRAW_MS = 200;
const MIB = 1024 * 1024;

export function formatProgress(progress: TarProgress, elapsedMs: number, width = 30): string {
  const fraction = progress.total === 0 ? 1 : progress.done / progress.total;
  const filled = Math.round(fraction * width);
  const rate = elapsedMs > 0 ? progress.done / MIB / (elapsedMs / 1000) : 0;
  return (
    `${progress.entry} ${progress.phase} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ` +
    `${(progress.done / MIB).toFixed(1)}/${(progress.total / MIB).toFixed(1)} MiB ${rate.toFixed(0)} MiB/s`
  );
}

export function createProgressBar(stream: NodeJS.WriteStream): {
  update(progress: TarProgress): void;
  end(): void;
} {
  let phaseStart = Date.now();
  let lastPhase = "";
  let lastDraw = 0;
  let drawn = false;
  return {
    update(progress) {
      const key = `${progress.entry}/${progress.phase}`;
      if (key !== lastPhase) {
        lastPhase = key;
        phaseStart = Date.now();
      }
      const now = Date.now();
      if (now - lastDraw < REDRAW_MS && progress.done !== progress.total) return;
      lastDraw = now;
      drawn = true;
      stream.write(`\r${formatProgress(progress, now - phaseStart)}\x1b[K`);
    },
    end() {
      if (drawn) stream.write("\n");
    },
  };
}

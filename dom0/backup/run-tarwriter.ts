/**
 * `qubes-tarwriter`: one sparse entry for INPUT, to OUTPUT (default stdout),
 * optionally through a compress program. The CLI file only parses options.
 */
import { createWriteStream, openSync } from "node:fs";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { type CompressPipe, startCompressProgram } from "./compress.js";
import { createProgressBar } from "./progress.js";
import { createTarStream } from "./tar-writer.js";

export interface TarWriterOptions {
  readonly input: string;
  /** A path, or "-" for stdout. */
  readonly output: string;
  readonly overrideName?: string | undefined;
  readonly compressProgram?: string | undefined;
  readonly progress: boolean;
}

export async function runTarWriter(options: TarWriterOptions): Promise<void> {
  const toStdout = options.output === "-";
  let fileFd: number | undefined;
  let sink: Writable;
  let compress: CompressPipe | undefined;
  if (options.compressProgram !== undefined) {
    fileFd = toStdout ? 1 : openSync(options.output, "w", 0o644);
    compress = startCompressProgram(options.compressProgram, fileFd);
    sink = compress.input;
  } else {
    sink = toStdout ? process.stdout : createWriteStream(options.output, { mode: 0o644 });
  }
  const bar = options.progress ? createProgressBar(process.stderr) : undefined;
  const tar = createTarStream(sink, bar ? { onProgress: (p) => bar.update(p) } : {});
  try {
    await tar.addVolume(options.overrideName ?? options.input, options.input);
    await tar.finish();
  } catch (error) {
    // A compressor that died first is the real cause; our EPIPE is its symptom.
    await compress?.close().catch(() => {});
    throw compress?.failure() ?? error;
  } finally {
    bar?.end();
  }
  if (compress !== undefined) {
    await compress.close();
  } else if (!toStdout) {
    sink.end();
    await finished(sink);
  }
}

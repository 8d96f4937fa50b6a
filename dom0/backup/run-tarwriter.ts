/**
 * `qubes-tarwriter`: one sparse entry for INPUT, to OUTPUT (default stdout),
 * optionally through a compress program. The CLI file only parses options.
 * A regular output file takes the single-pass path (file-entry.ts); pipes,
 * devices and compress programs take the stream writer.
 */
import { createWriteStream, fstatSync, openSync } from "node:fs";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { SystemError } from "../../shared/errors.js";
import { type CompressPipe, startCompressProgram } from "./compress.js";
import { writeSparseArchiveFile } from "./file-entry.js";
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

function openOutput(path: string): number {
  try {
    return openSync(path, "w", 0o644);
  } catch (error) {
    throw new SystemError(`Cannot write the archive to "${path}"`, { cause: error });
  }
}

export async function runTarWriter(options: TarWriterOptions): Promise<void> {
  // Like the reference (`if args.override_name`), an empty override keeps the input's name.
  const name = options.overrideName || options.input;
  const toStdout = options.output === "-";
  const bar = options.progress ? createProgressBar(process.stderr) : undefined;
  const progress = bar ? { onProgress: bar.update } : {};
  const fileFd = toStdout ? 1 : openOutput(options.output);
  try {
    if (options.compressProgram === undefined && !toStdout && fstatSync(fileFd).isFile()) {
      await writeSparseArchiveFile(options.input, name, fileFd, progress);
      return;
    }
    let sink: Writable;
    let compress: CompressPipe | undefined;
    if (options.compressProgram !== undefined) {
      compress = startCompressProgram(options.compressProgram, fileFd);
      sink = compress.input;
    } else {
      sink = toStdout ? process.stdout : createWriteStream("", { fd: fileFd, autoClose: false });
    }
    const tar = createTarStream(sink, progress);
    try {
      await tar.addVolume(name, options.input);
      await tar.finish();
    } catch (error) {
      // A compressor that died first is the real cause; our EPIPE is its symptom.
      await compress?.close().catch(() => {});
      throw compress?.failure() ?? error;
    }
    if (compress !== undefined) {
      await compress.close();
    } else if (!toStdout) {
      sink.end();
      await finished(sink);
    }
  } finally {
    bar?.end();
  }
}

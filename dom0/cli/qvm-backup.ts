#!/usr/bin/env node
/** `qvm-backup [--compress-program CMD] [--exclude VM]... DEST [VM...]`: a subset of Qubes' tool (no encryption). */
import { createWriteStream, openSync } from "node:fs";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import { writeBackup } from "../backup/backup.js";
import { type CompressPipe, CompressProgramError, startCompressProgram } from "../backup/compress.js";
import { createProgressBar } from "../backup/progress.js";
import { StoreAdapter } from "../backup/store-adapter.js";
import { openPool } from "../storage/open-pool.js";
import { resolveQubesDir } from "../store/store.js";

interface Options {
  compressProgram?: string;
  exclude: string[];
  qubesDir?: string;
  pool: string;
}

async function main(dest: string, vms: string[], opts: Options): Promise<void> {
  const qubesDir = resolveQubesDir(opts.qubesDir);
  const toStdout = dest === "-";
  let compress: CompressPipe | undefined;
  let output: Writable;
  if (opts.compressProgram !== undefined) {
    compress = startCompressProgram(opts.compressProgram, toStdout ? 1 : openSync(dest, "w", 0o600));
    output = compress.input;
  } else {
    // 0600: a backup holds every byte of the VMs' disks.
    output = toStdout ? process.stdout : createWriteStream(dest, { mode: 0o600 });
  }
  const bar = process.stderr.isTTY ? createProgressBar(process.stderr) : undefined;
  try {
    const summary = await writeBackup({
      source: new StoreAdapter(qubesDir),
      pool: openPool(opts.pool, qubesDir),
      vms,
      exclude: opts.exclude,
      output,
      ...(bar ? { onProgress: (p) => bar.update(p) } : {}),
    });
    bar?.end();
    if (compress !== undefined) await compress.close();
    else if (!toStdout) {
      output.end();
      await finished(output);
    }
    process.stderr.write(`Backed up ${summary.vms.join(", ")} to ${dest}\n`);
  } catch (error) {
    bar?.end();
    await compress?.close().catch(() => {});
    throw compress?.failure() ?? error;
  }
}

const program = new Command("qvm-backup")
  .description("Back up qubes' configuration and volumes into one tar archive")
  .option("--compress-program <COMMAND>", "filter the archive through COMMAND (e.g. zstd)")
  .option(
    "--exclude <VM>",
    "leave VM out (repeatable)",
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .option("--qubes-dir <DIR>", "the dom0 store directory (default $QUBES_DIR or /var/lib/qubes)")
  .option("--pool <SPEC>", 'volume pool: "file" or "lvm_thin:VG/THINPOOL"', "file")
  .argument("<DEST>", 'archive path, or "-" for stdout')
  .argument("[VM...]", "qubes to back up (default: all but dom0)")
  .action(main);

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`qvm-backup: ${describeError(error)}\n`);
  process.exitCode = error instanceof CompressProgramError ? error.exitCode : 1;
}

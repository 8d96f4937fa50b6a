#!/usr/bin/env node
/** `qubes-tarwriter [--override-name NAME] [--use-compress-program CMD] INPUT [OUTPUT|-]`, as `python3 -m qubes.tarwriter`. */
import { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import { CompressProgramError } from "../backup/compress.js";
import { runTarWriter } from "../backup/run-tarwriter.js";

const program = new Command("qubes-tarwriter")
  .description("Write a sparse tar archive (GNU sparse 1.0, pax) of a file or block device")
  .option("--override-name <NAME>", "use this name in tar header")
  .option("--use-compress-program <COMMAND>", "filter data through COMMAND")
  .argument("<input_file>", "input file name")
  .argument("[output_file]", "output file name", "-")
  .action(
    async (input: string, output: string, opts: { overrideName?: string; useCompressProgram?: string }) => {
      await runTarWriter({
        input,
        output,
        overrideName: opts.overrideName,
        compressProgram: opts.useCompressProgram,
        progress: process.stderr.isTTY === true,
      });
    },
  );

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`qubes-tarwriter: ${describeError(error)}\n`);
  process.exitCode = error instanceof CompressProgramError ? error.exitCode : 1;
}

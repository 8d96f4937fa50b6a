/**
 * `--use-compress-program CMD`: the archive is piped through `sh -c CMD`,
 * whose stdout is the real output. The program's exit status is the verdict:
 * a failing compressor makes the whole run fail with its exit code, even if
 * it closed its stdin early (then our writes fail with EPIPE, which is only a
 * symptom).
 */
import { spawn } from "node:child_process";
import type { Writable } from "node:stream";
import { SystemError } from "../../shared/errors.js";

export class CompressProgramError extends SystemError {
  override name = "CompressProgramError";
  readonly exitCode: number;
  constructor(command: string, exitCode: number, signal: string | null) {
    super(
      `Cannot compress the archive with "${command}": ` +
        (signal !== null ? `it was killed by ${signal}` : `it exited with code ${exitCode}`),
    );
    this.exitCode = exitCode;
  }
}

export interface CompressPipe {
  /** Where the archive goes. */
  readonly input: Writable;
  /** Ends the input and waits for the program; throws CompressProgramError when it failed. */
  close(): Promise<void>;
  /** The program's verdict if it already exited with failure, else undefined. */
  failure(): CompressProgramError | undefined;
}

/** Starts `sh -c command` writing to `outputFd` (a file or our stdout). */
export function startCompressProgram(command: string, outputFd: number): CompressPipe {
  const child = spawn("sh", ["-c", command], { stdio: ["pipe", outputFd, "inherit"] });
  const stdin = child.stdin!; // stdio[0] is "pipe"
  let failed: CompressProgramError | undefined;
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (error) =>
      reject(new SystemError(`Cannot start compress program "${command}"`, { cause: error })),
    );
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      failed = new CompressProgramError(command, code ?? 128, signal);
      reject(failed);
    });
  });
  exited.catch(() => {});
  // EPIPE when the program quits early is reported through its exit status.
  stdin.on("error", () => {});
  return {
    input: stdin,
    failure: () => failed,
    close: async () => {
      stdin.end();
      await exited;
    },
  };
}

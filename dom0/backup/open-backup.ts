/**
 * Opens a backup for reading, decompressing it when its first bytes are a
 * zstd or gzip frame (what `qvm-backup --compress-program zstd|gzip` makes),
 * so restore needs no option for it.
 */
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { SystemError } from "../../shared/errors.js";

/** Frame magics: zstd (RFC 8878 §3.1.1) and gzip (RFC 1952 §2.3.1). */
const DECOMPRESSORS: ReadonlyArray<readonly [Buffer, string, readonly string[]]> = [
  [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), "zstd", ["-dc"]],
  [Buffer.from([0x1f, 0x8b]), "gzip", ["-dc"]],
];

/** Read size for the archive: large reads keep restore I/O efficient. */
const READ_SIZE = 1 << 20;

/**
 * The file's bytes in chunks read into two alternating buffers: memory stays
 * flat (a ReadStream allocates every chunk afresh and RSS grows until the
 * GC runs). Safe because the tar reader is done with a chunk — it copies or
 * awaits what it keeps — before it pulls the one after the next.
 */
async function* readChunks(path: string): AsyncGenerator<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffers = [Buffer.allocUnsafeSlow(READ_SIZE), Buffer.allocUnsafeSlow(READ_SIZE)];
    for (let i = 0; ; i++) {
      const buf = buffers[i % 2]!;
      const { bytesRead } = await handle.read(buf, 0, READ_SIZE, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

export interface OpenedBackup {
  readonly stream: AsyncIterable<Buffer>;
  /** Resolves when a decompressor exited well; rejects naming it otherwise. */
  readonly done: Promise<void>;
}

export async function openBackup(path: string): Promise<OpenedBackup> {
  const head = Buffer.alloc(4);
  const handle = await open(path, "r").catch((error) => {
    throw new SystemError(`Cannot open backup "${path}"`, { cause: error });
  });
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  const match = DECOMPRESSORS.find(([magic]) => head.subarray(0, magic.length).equals(magic));
  if (match === undefined) {
    return { stream: readChunks(path), done: Promise.resolve() };
  }
  const [, program, args] = match;
  const child = spawn(program, [...args, path], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (error) => reject(new SystemError(`Cannot run "${program}"`, { cause: error })));
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new SystemError(
              `Cannot decompress "${path}" with ${program}: exit code ${code}: ${stderr.trim()}`,
            ),
          ),
    );
  });
  done.catch(() => {});
  return { stream: child.stdout, done };
}

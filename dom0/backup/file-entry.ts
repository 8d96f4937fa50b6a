/**
 * One sparse entry written to a regular output file, usually in a single
 * pass. The stream writer must read every data byte twice (the header needs
 * the map first); a seekable output allows a bet instead: the data starts
 * right after the header and ONE map block, so while scanning, each data run
 * is written straight to its final place, and header and map are written at
 * offset 0 at the end. The bet holds when the map fits in 512 bytes (inputs
 * with up to ~20 extents: dense images, the costly case) and the header has
 * the length guessed from the input size. When it fails, the entry is
 * written again with the exact layout by the ordinary second pass, so the
 * archive is the same byte for byte either way.
 */
import { closeSync, fstat, ftruncate, open } from "node:fs";
import { promisify } from "node:util";
import { SystemError } from "../../shared/errors.js";
import { BufferPool, readExactly, writeAt } from "./block-io.js";
import { readInputSize } from "./input-size.js";
import { BLOCK_SIZE, dataSize, paddingFor, type SparseMap, SparseMapBuilder } from "./sparse-map.js";
import { DEFAULT_CHUNK_SIZE, formatSparseEntryStart, type TarProgress } from "./tar-writer.js";

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const ftruncateAsync = promisify(ftruncate);

/** Reads in flight; each buffer also waits for its writes before it is reused. */
const READ_AHEAD = 2;
/** Buffers: the reads in flight plus chunks whose writes are still running. */
const BUFFER_COUNT = 4;
/** Stop betting once the completed extents alone need more than this much map text. */
const MAP_BUDGET = 400;

export interface FileEntryOptions {
  readonly onProgress?: (progress: TarProgress) => void;
}

/** Writes the entry for `input` named `name`, then the end-of-archive blocks, to `outFd` from offset 0. */
export async function writeSparseArchiveFile(
  input: string,
  name: string,
  outFd: number,
  options: FileEntryOptions = {},
): Promise<SparseMap> {
  const report = options.onProgress ?? (() => {});
  const inFd = await openAsync(input, "r").catch((error: unknown) => {
    throw new SystemError(`Cannot archive "${input}" as "${name}": cannot open it`, { cause: error });
  });
  try {
    const size = await readInputSize(input, await fstatAsync(inFd));
    const pool = new BufferPool(BUFFER_COUNT, DEFAULT_CHUNK_SIZE);
    // The bet: one map block, and the header a one-extent map of the whole input would get.
    const guess = formatSparseEntryStart(name, { extents: [{ offset: 0, size }], realSize: size });
    const builder = new SparseMapBuilder();
    let betting = true;
    let out = guess.length;
    let next = 0;
    const reads: Array<{ buf: Buffer; length: number; done: Promise<void> }> = [];
    const writes: Promise<unknown>[] = [];
    try {
      for (;;) {
        // 1. keep READ_AHEAD reads in flight (a buffer comes back once its writes are done)
        while (next < size && reads.length < READ_AHEAD) {
          const buf = await pool.acquire();
          const length = Math.min(DEFAULT_CHUNK_SIZE, size - next);
          const done = readExactly(inFd, buf, length, next, name);
          done.catch(() => {}); // awaited below, in order
          reads.push({ buf, length, done });
          next += length;
        }
        const head = reads.shift();
        if (head === undefined) break;
        await head.done;
        // 2. scan it; while the bet holds, its data runs go straight to their final place
        const pending: Promise<void>[] = [];
        builder.add(head.buf, head.length, (start, end) => {
          if (!betting) return;
          pending.push(writeAt(outFd, head.buf, start, end, out));
          out += end - start;
        });
        if (betting && builder.extentCount * 2 * (String(size).length + 1) > MAP_BUDGET) betting = false;
        const written = Promise.all(pending).finally(() => pool.release(head.buf));
        written.catch(() => {}); // awaited after the loop
        writes.push(written);
        report({
          entry: name,
          phase: "scan",
          done: next - reads.reduce((n, r) => n + r.length, 0),
          total: size,
        });
      }
    } finally {
      for (const r of reads) await r.done.catch(() => {});
      await Promise.allSettled(writes);
    }
    await Promise.all(writes);
    const map = builder.finish();
    const start = formatSparseEntryStart(name, map);
    if (!betting || start.length !== guess.length)
      await copyExtents(inFd, outFd, map, start.length, pool, name, report);
    await writeAt(outFd, start, 0, start.length, 0);
    const dataEnd = start.length + dataSize(map);
    const end = Buffer.alloc(paddingFor(dataSize(map)) + 2 * BLOCK_SIZE);
    await writeAt(outFd, end, 0, end.length, dataEnd);
    await ftruncateAsync(outFd, dataEnd + end.length);
    return map;
  } finally {
    closeSync(inFd);
  }
}

/** The ordinary second pass: data extents read again and written at their exact places. */
async function copyExtents(
  inFd: number,
  outFd: number,
  map: SparseMap,
  at: number,
  pool: BufferPool,
  name: string,
  report: (progress: TarProgress) => void,
): Promise<void> {
  const total = dataSize(map);
  let out = at;
  let copied = 0;
  const inFlight: Promise<void>[] = [];
  try {
    for (const extent of map.extents) {
      for (let pos = extent.offset; pos < extent.offset + extent.size; pos += DEFAULT_CHUNK_SIZE) {
        const length = Math.min(DEFAULT_CHUNK_SIZE, extent.offset + extent.size - pos);
        const buf = await pool.acquire();
        const target = out;
        out += length;
        const step = readExactly(inFd, buf, length, pos, name)
          .then(() => writeAt(outFd, buf, 0, length, target))
          .finally(() => pool.release(buf));
        step.catch(() => {}); // awaited below, in order
        inFlight.push(step);
        copied += length;
        report({ entry: name, phase: "copy", done: copied, total });
        if (inFlight.length >= READ_AHEAD) await inFlight.shift();
      }
    }
    await Promise.all(inFlight);
  } finally {
    // On failure, nothing may still use the input fd when the caller closes it.
    await Promise.allSettled(inFlight);
  }
}

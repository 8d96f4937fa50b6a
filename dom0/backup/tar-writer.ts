/**
 * A streaming tar writer whose volume entries are what Qubes'
 * `python3 -m qubes.tarwriter` writes: one POSIX pax entry per input in GNU
 * sparse format 1.0 (pax keys GNU.sparse.major/minor/name/realsize, ustar
 * name `DIR/GNUSparseFile.0/BASE`, the sparse map at the start of the data,
 * then only the data extents). Two differences, both deliberate:
 *  1. entries whose stored size is not a multiple of 512 are padded (the
 *     reference omits the padding and GNU tar then warns), and
 *  2. the ustar name uses "." for an empty directory part and 0 instead of
 *     the writer's PID, as GNU tar's `./GNUSparseFile.%p/%f` does, so the
 *     output is reproducible and never an absolute path. Readers take the
 *     name from GNU.sparse.name.
 *
 * Two passes over each input: the pax header must state the map (and so the
 * stored size) before any data, and nothing bigger than a few buffers may be
 * held in memory. Pass 1 reads everything and builds the map; pass 2 reads
 * only the data extents. Reads are issued ahead of the scan so the thread
 * pool copies from the page cache while JavaScript compares.
 */
import { closeSync, fstat, open } from "node:fs";
import type { Writable } from "node:stream";
import { promisify } from "node:util";
import { SystemError } from "../../shared/errors.js";
import { BufferPool, OrderedWriter, readExactly } from "./block-io.js";
import { readInputSize } from "./input-size.js";
import {
  BLOCK_SIZE,
  dataSize,
  formatSparseMap,
  paddingFor,
  type SparseMap,
  SparseMapBuilder,
} from "./sparse-map.js";
import { formatEntryHeader } from "./tar-header.js";

/** Read size: large enough that syscall overhead vanishes, small enough for the RSS budget (64 MiB). */
export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Buffers per stream: reads in flight plus writes not yet taken by the output. */
const BUFFER_COUNT = 6;
/** Reads issued ahead of the one being scanned or written. */
const READ_AHEAD = 3;
/** The reference's TarInfo defaults: mode 0644, mtime 0 (uid/gid 0 are fixed in tar-header). */
const ENTRY_MODE = 0o644;
const ENTRY_MTIME = 0;

export interface TarProgress {
  readonly entry: string;
  readonly phase: "scan" | "copy";
  readonly done: number;
  readonly total: number;
}

export interface TarStreamOptions {
  readonly chunkSize?: number;
  readonly onProgress?: (progress: TarProgress) => void;
}

export interface TarStream {
  /** Archives a regular file or block device as a sparse entry named `name`; returns its map. */
  addVolume(name: string, path: string): Promise<SparseMap>;
  /** Archives an in-memory file as a plain entry. */
  addFile(name: string, data: Buffer): Promise<void>;
  /** Writes the two zero blocks that end an archive and waits for the output to take everything. */
  finish(): Promise<void>;
}

/** The ustar name of a sparse entry, GNU tar's `%d/GNUSparseFile.%p/%f` with %p = 0. */
export function sparseEntryName(name: string): string {
  const slash = name.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "" : name.slice(0, slash);
  return `${dir}/GNUSparseFile.0/${name.slice(slash + 1)}`;
}

/** Header blocks plus the padded map: everything before the first data byte of a sparse entry. */
export function formatSparseEntryStart(name: string, map: SparseMap): Buffer {
  const mapBlock = formatSparseMap(map);
  const header = formatEntryHeader({
    name: sparseEntryName(name),
    size: mapBlock.length + dataSize(map),
    mode: ENTRY_MODE,
    mtime: ENTRY_MTIME,
    pax: [
      ["GNU.sparse.major", "1"],
      ["GNU.sparse.minor", "0"],
      ["GNU.sparse.name", name],
      ["GNU.sparse.realsize", String(map.realSize)],
    ],
  });
  return Buffer.concat([header, mapBlock]);
}

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);

export function createTarStream(output: Writable, options: TarStreamOptions = {}): TarStream {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (chunkSize <= 0 || chunkSize % BLOCK_SIZE !== 0) {
    throw new RangeError(`Cannot use chunk size "${chunkSize}": not a positive multiple of ${BLOCK_SIZE}`);
  }
  const writer = new OrderedWriter(output);
  const pool = new BufferPool(BUFFER_COUNT, chunkSize);
  const report = options.onProgress ?? (() => {});

  async function scan(fd: number, size: number, what: string): Promise<SparseMap> {
    const builder = new SparseMapBuilder();
    const reads: Array<{ buf: Buffer; length: number; done: Promise<void> }> = [];
    let next = 0;
    const issue = (buf: Buffer) => {
      const length = Math.min(chunkSize, size - next);
      const done = readExactly(fd, buf, length, next, what);
      done.catch(() => {}); // awaited in order below; a failure must not count as unhandled first
      reads.push({ buf, length, done });
      next += length;
    };
    try {
      while (next < size && reads.length < READ_AHEAD) issue(await pool.acquire());
      while (reads.length > 0) {
        const head = reads[0]!;
        await head.done;
        reads.shift();
        builder.add(head.buf, head.length);
        report({
          entry: what,
          phase: "scan",
          done: next - reads.reduce((n, r) => n + r.length, 0),
          total: size,
        });
        if (next < size) issue(head.buf);
        else pool.release(head.buf);
      }
    } finally {
      // On failure, let reads already issued settle before their buffers are reused.
      for (const r of reads) {
        await r.done.catch(() => {});
        pool.release(r.buf);
      }
    }
    return builder.finish();
  }

  async function copy(fd: number, map: SparseMap, what: string): Promise<void> {
    const total = dataSize(map);
    const reads: Array<{ buf: Buffer; length: number; done: Promise<void> }> = [];
    let copied = 0;
    const writeOldest = async () => {
      const head = reads[0]!;
      await head.done;
      reads.shift();
      writer.write(head.buf.subarray(0, head.length), () => pool.release(head.buf));
      copied += head.length;
      report({ entry: what, phase: "copy", done: copied, total });
    };
    try {
      for (const extent of map.extents) {
        for (let at = extent.offset; at < extent.offset + extent.size; at += chunkSize) {
          const length = Math.min(chunkSize, extent.offset + extent.size - at);
          const buf = await pool.acquire();
          writer.check();
          const done = readExactly(fd, buf, length, at, what);
          done.catch(() => {}); // awaited in order by writeOldest
          reads.push({ buf, length, done });
          if (reads.length >= READ_AHEAD) await writeOldest();
        }
      }
      while (reads.length > 0) await writeOldest();
    } finally {
      for (const r of reads.splice(0)) {
        await r.done.catch(() => {});
        pool.release(r.buf);
      }
    }
    writer.write(Buffer.alloc(paddingFor(total)));
  }

  let chain: Promise<unknown> = Promise.resolve();
  /** Entries are written strictly one after another, even if callers do not await. */
  function serial<T>(step: () => Promise<T>): Promise<T> {
    const result = chain.then(step);
    chain = result.catch(() => {});
    return result;
  }

  return {
    addVolume: (name, path) =>
      serial(async () => {
        let fd: number;
        try {
          fd = await openAsync(path, "r");
        } catch (error) {
          throw new SystemError(`Cannot archive "${path}" as "${name}": cannot open it`, { cause: error });
        }
        try {
          const size = await readInputSize(path, await fstatAsync(fd));
          const map = await scan(fd, size, name);
          writer.write(formatSparseEntryStart(name, map));
          await copy(fd, map, name);
          writer.check();
          return map;
        } finally {
          closeSync(fd);
        }
      }),
    addFile: (name, data) =>
      serial(async () => {
        const header = formatEntryHeader({
          name,
          size: data.length,
          mode: ENTRY_MODE,
          mtime: ENTRY_MTIME,
          pax: [],
        });
        writer.write(Buffer.concat([header, data, Buffer.alloc(paddingFor(data.length))]));
        writer.check();
      }),
    finish: () =>
      serial(async () => {
        writer.write(Buffer.alloc(2 * BLOCK_SIZE));
        await writer.drain();
      }),
  };
}

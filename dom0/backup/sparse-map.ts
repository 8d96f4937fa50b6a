/**
 * The sparse map of a volume: where its data is, as GNU tar's sparse format
 * 1.0 stores it. A 512-byte block of zeros is a hole; everything else is
 * data. Node has no SEEK_DATA/SEEK_HOLE (and block devices do not report
 * holes anyway), so the map comes from reading the bytes.
 */

/** tar's block size; also the granularity of holes (like Qubes' tarwriter). */
export const BLOCK_SIZE = 512;

/** One data extent: `size` bytes of data at `offset` of the input. */
export interface Extent {
  readonly offset: number;
  readonly size: number;
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** Zeros to compare whole chunks against; grown on demand, never written to. */
let zeroChunk = Buffer.alloc(1 << 20);

function isAllZero(buf: Buffer, start: number, end: number): boolean {
  if (end - start > zeroChunk.length) zeroChunk = Buffer.alloc(end - start);
  // Buffer#compare with ranges is a memcmp without allocating a view.
  return buf.compare(zeroChunk, 0, end - start, start, end) === 0;
}

/**
 * Builds the sparse map from consecutive chunks of the input. Chunks must be
 * fed in order; each chunk's length must be a multiple of BLOCK_SIZE except
 * the last one. A final partial block is always data, like the reference
 * (its comparison with a full zero block fails), so both produce the same map.
 */
export class SparseMapBuilder {
  readonly #extents: Extent[] = [];
  #position = 0;
  #dataStart = -1;

  /**
   * Scans `buf[0, length)`, which holds the input bytes at the current
   * position. `onData(start, end)` is told each run of data blocks inside
   * this chunk (chunk-relative), for writers that copy while they scan.
   */
  add(buf: Buffer, length: number, onData?: (start: number, end: number) => void): void {
    const base = this.#position;
    // Fast path 1: a whole chunk of zeros (one memcmp) is one hole.
    if (length % BLOCK_SIZE === 0 && isAllZero(buf, 0, length)) {
      this.#endData(base);
      this.#position += length;
      return;
    }
    // Fast path 2: a block whose first 8 bytes are not zero is data; only
    // blocks that start with zeros need the full comparison.
    // (An unaligned buffer gets a 2-word zero view: every block takes the memcmp.)
    const words =
      buf.byteOffset % 4 === 0
        ? new Uint32Array(buf.buffer, buf.byteOffset, length >>> 2)
        : new Uint32Array(2);
    const fullBlocks = Math.floor(length / BLOCK_SIZE);
    let runStart = -1;
    for (let block = 0; block < fullBlocks; block++) {
      const at = block * BLOCK_SIZE;
      const word = at >>> 2;
      const zero =
        (words[word] ?? 0) === 0 &&
        (words[word + 1] ?? 0) === 0 &&
        buf.compare(ZERO_BLOCK, 0, BLOCK_SIZE, at, at + BLOCK_SIZE) === 0;
      if (zero) {
        this.#endData(base + at);
        if (runStart >= 0) onData?.(runStart, at);
        runStart = -1;
      } else {
        if (this.#dataStart < 0) this.#dataStart = base + at;
        if (runStart < 0) runStart = at;
      }
    }
    if (length % BLOCK_SIZE !== 0) {
      if (this.#dataStart < 0) this.#dataStart = base + fullBlocks * BLOCK_SIZE;
      if (runStart < 0) runStart = fullBlocks * BLOCK_SIZE;
    }
    if (runStart >= 0) onData?.(runStart, length);
    this.#position += length;
  }

  /** Extents completed so far (the open one not counted). */
  get extentCount(): number {
    return this.#extents.length;
  }

  #endData(at: number): void {
    if (this.#dataStart < 0) return;
    this.#extents.push({ offset: this.#dataStart, size: at - this.#dataStart });
    this.#dataStart = -1;
  }

  /**
   * The complete map. It always reaches the real size: a file that ends in a
   * hole gets a zero-length extent at its end, or extraction would truncate it.
   */
  finish(): SparseMap {
    const end = this.#position;
    if (this.#dataStart >= 0) this.#endData(end);
    else this.#extents.push({ offset: end, size: 0 });
    return { extents: this.#extents, realSize: end };
  }
}

export interface SparseMap {
  readonly extents: readonly Extent[];
  readonly realSize: number;
}

/** Bytes of data the map stores (the sum of its extents). */
export function dataSize(map: SparseMap): number {
  let total = 0;
  for (const extent of map.extents) total += extent.size;
  return total;
}

/** The map as it opens the entry's data: decimal count, then offset/size lines, NUL-padded to 512. */
export function formatSparseMap(map: SparseMap): Buffer {
  const lines = [String(map.extents.length)];
  for (const extent of map.extents) lines.push(String(extent.offset), String(extent.size));
  const text = Buffer.from(`${lines.join("\n")}\n`, "ascii");
  const padded = Buffer.alloc(Math.ceil(text.length / BLOCK_SIZE) * BLOCK_SIZE);
  text.copy(padded);
  return padded;
}

/** Bytes needed to pad `size` to a whole number of tar blocks. */
export function paddingFor(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

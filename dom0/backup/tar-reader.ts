/**
 * A streaming tar reader for what restore meets: ustar headers (POSIX and
 * GNU magic), pax extended headers, GNU long names, and GNU sparse files in
 * pax form — format 1.0 (what `qubes.tarwriter`, our writer and GNU tar
 * 1.34's `--sparse --format=pax` write) and the older 0.0/0.1. Entries are
 * yielded one at a time; a consumer reads an entry's data through
 * `readData`, and whatever it does not read is skipped.
 */
import { type ByteSource, TruncatedError } from "./byte-source.js";
import { BLOCK_SIZE, type Extent, paddingFor } from "./sparse-map.js";
import {
  CorruptArchiveError,
  checkExtents,
  hasValidChecksum,
  isZeroBlock,
  pairs,
  parseNumberField,
  parsePaxRecords,
  parseTextField,
  safeInt,
} from "./tar-fields.js";

export { CorruptArchiveError } from "./tar-fields.js";

/** pax headers larger than this are not metadata but an attack or corruption. */
const MAX_PAX_SIZE = 1 << 20;
/** A sparse map this long (numbers) would not fit any real volume. */
const MAX_SPARSE_EXTENTS = 1 << 22;

export interface TarEntry {
  readonly name: string;
  /** ustar type flag: "0" regular file, "5" directory, ... */
  readonly type: string;
  /** The file's real size (a sparse file's `GNU.sparse.realsize`, else the stored size). */
  readonly realSize: number;
  /** Data extents of a sparse file, else one extent covering the whole file. */
  readonly extents: readonly Extent[];
  readonly sparse: boolean;
  readonly pax: ReadonlyMap<string, string>;
}

export class TarReader {
  readonly #source: ByteSource;
  #pendingData = 0;

  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Reads (streams) the current entry's stored data, extent by extent, to `sink`. */
  async readData(
    entry: TarEntry,
    sink: (offset: number, piece: Buffer) => void | Promise<void>,
  ): Promise<void> {
    for (const extent of entry.extents) {
      let at = extent.offset;
      await this.#source.pipe(extent.size, `"${entry.name}"`, async (piece) => {
        await sink(at, piece);
        at += piece.length;
      });
      this.#pendingData -= extent.size;
    }
  }

  async #skipRest(): Promise<void> {
    await this.#source.pipe(this.#pendingData, "an entry's data", () => {});
    this.#pendingData = 0;
  }

  /** The next entry, or undefined at the end-of-archive marker. */
  async next(): Promise<TarEntry | undefined> {
    await this.#skipRest();
    let pax = new Map<string, string>();
    let paxList: Array<[string, string]> = [];
    let longName: string | undefined;
    for (;;) {
      const at = this.#source.offset;
      const block = await this.#source.readExactly(BLOCK_SIZE, `the header at byte ${at}`);
      if (block === undefined) throw new TruncatedError("the archive ends without its end-of-archive blocks");
      if (isZeroBlock(block)) return undefined;
      if (!hasValidChecksum(block))
        throw new CorruptArchiveError(`Cannot read the header at byte ${at}: bad checksum`);
      const type = String.fromCharCode(block[156]!) === "\0" ? "0" : String.fromCharCode(block[156]!);
      let size = parseNumberField(block, 124, 12, `the size in the header at byte ${at}`);
      if (type === "x" || type === "g" || type === "L" || type === "K") {
        if (size > MAX_PAX_SIZE) {
          throw new CorruptArchiveError(
            `Cannot read the header at byte ${at}: its ${size}-byte extension is too large`,
          );
        }
        const data =
          (await this.#source.readExactly(size + paddingFor(size), `the header at byte ${at}`)) ??
          Buffer.alloc(0);
        const body = data.subarray(0, size);
        if (type === "x") {
          paxList = parsePaxRecords(body, `at byte ${at}`);
          pax = new Map(paxList);
        } else if (type === "L") longName = parseTextField(body, 0, body.length);
        continue;
      }
      const ustar = block.subarray(257, 262).toString("latin1") === "ustar";
      const prefix = ustar ? parseTextField(block, 345, 155) : "";
      let name =
        pax.get("path") ??
        longName ??
        (prefix !== "" ? `${prefix}/${parseTextField(block, 0, 100)}` : parseTextField(block, 0, 100));
      if (pax.has("size")) size = safeInt(pax.get("size"), `the pax size at byte ${at}`);
      const where = `entry "${pax.get("GNU.sparse.name") ?? name}"`;
      let extents: Extent[] = [{ offset: 0, size }];
      let realSize = size;
      let sparse = false;
      let mapBytes = 0;
      const major = pax.get("GNU.sparse.major");
      if (major !== undefined || pax.has("GNU.sparse.map") || pax.has("GNU.sparse.offset")) {
        sparse = true;
        name = pax.get("GNU.sparse.name") ?? name;
        realSize = safeInt(
          pax.get("GNU.sparse.realsize") ?? pax.get("GNU.sparse.size"),
          `the real size of ${where}`,
        );
        if (major === "1" && pax.get("GNU.sparse.minor") === "0") {
          const parsed = await this.#readSparseMap(where, size);
          extents = parsed.extents;
          mapBytes = parsed.bytes;
        } else if (major === undefined && pax.has("GNU.sparse.map")) {
          const numbers = (pax.get("GNU.sparse.map") ?? "").split(",").filter((s) => s !== "");
          extents = pairs(
            numbers.map((n) => safeInt(n, `the sparse map of ${where}`)),
            where,
          );
        } else if (major === undefined) {
          const offsets = paxList
            .filter(([k]) => k === "GNU.sparse.offset")
            .map(([, v]) => safeInt(v, where));
          const sizes = paxList
            .filter(([k]) => k === "GNU.sparse.numbytes")
            .map(([, v]) => safeInt(v, where));
          if (offsets.length !== sizes.length) {
            throw new CorruptArchiveError(
              `Cannot read ${where}: its sparse offsets and sizes do not pair up`,
            );
          }
          extents = offsets.map((offset, i) => ({ offset, size: sizes[i]! }));
        } else {
          throw new CorruptArchiveError(
            `Cannot read ${where}: GNU sparse format ${major}.${pax.get("GNU.sparse.minor")} is not supported`,
          );
        }
        checkExtents(extents, realSize, name);
        const stored = extents.reduce((n, e) => n + e.size, 0);
        if (stored !== size - mapBytes) {
          throw new CorruptArchiveError(
            `Cannot restore "${name}": its sparse map describes ${stored} bytes of data but the entry stores ${size - mapBytes}`,
          );
        }
      }
      // Skip reads past the data: the padding of the whole stored size.
      this.#pendingData = size - mapBytes + paddingFor(size);
      return { name, type, realSize, extents, sparse, pax };
    }
  }

  /** GNU sparse 1.0: decimal numbers, newline-terminated, in whole blocks before the data. */
  async #readSparseMap(where: string, size: number): Promise<{ extents: Extent[]; bytes: number }> {
    const numbers: number[] = [];
    let count = -1;
    let bytes = 0;
    let partial = "";
    while (count < 0 || numbers.length < 2 * count) {
      if (bytes + BLOCK_SIZE > size)
        throw new CorruptArchiveError(`Cannot read ${where}: its sparse map runs past its data`);
      const block = await this.#source.readExactly(BLOCK_SIZE, where);
      if (block === undefined) throw new TruncatedError(`the archive ends inside ${where}`);
      bytes += BLOCK_SIZE;
      const lines = (partial + block.toString("latin1")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (count >= 0 && numbers.length >= 2 * count) break;
        const n = safeInt(line, `the sparse map of ${where}`);
        if (count < 0) {
          if (n > MAX_SPARSE_EXTENTS)
            throw new CorruptArchiveError(`Cannot read ${where}: its sparse map claims ${n} extents`);
          count = n;
        } else numbers.push(n);
      }
      if (/[^0-9\0]/.test(partial))
        throw new CorruptArchiveError(`Cannot read ${where}: its sparse map is malformed`);
      partial = partial.replace(/\0+$/, "");
    }
    return { extents: pairs(numbers, where), bytes };
  }
}

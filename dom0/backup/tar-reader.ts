/**
 * A streaming tar reader for what restore meets: ustar headers (POSIX and
 * GNU magic), pax extended headers, GNU long names, and GNU sparse files in
 * pax form — format 1.0 (what `qubes.tarwriter`, our writer and GNU tar
 * 1.34's `--sparse --format=pax` write) and the older 0.0/0.1. Entries are
 * yielded one at a time; a consumer reads an entry's data through
 * `readData`, and whatever it does not read is skipped.
 */
import { InvalidInputError } from "../../shared/errors.js";
import { type ByteSource, TruncatedError } from "./byte-source.js";
import { BLOCK_SIZE, type Extent, paddingFor } from "./sparse-map.js";

/** pax headers larger than this are not metadata but an attack or corruption. */
const MAX_PAX_SIZE = 1 << 20;
/** A sparse map this long (numbers) would not fit any real volume. */
const MAX_SPARSE_EXTENTS = 1 << 22;

export class CorruptArchiveError extends InvalidInputError {
  override name = "CorruptArchiveError";
}

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

function isZero(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

function number(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if ((field[0]! & 0x80) !== 0) {
    // GNU base-256: big-endian two's complement with the top bit as marker; only positive sizes make sense.
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const digits = field
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .replace(/^ +/, "");
  if (digits === "") return 0;
  if (!/^[0-7]+$/.test(digits))
    throw new CorruptArchiveError(`Cannot read ${what}: "${digits}" is not octal`);
  return Number.parseInt(digits, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = block
    .subarray(148, 156)
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const value = Number.parseInt(stored, 8);
  return /^[0-7]+$/.test(stored) && (value === unsigned || value === signed);
}

/** pax records `"<len> <key>=<value>\n"`; repeated keys (sparse 0.0) keep every value in order. */
export function parsePaxRecords(data: Buffer, where: string): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  let at = 0;
  while (at < data.length && data[at] !== 0) {
    const space = data.indexOf(0x20, at);
    const length = Number(data.subarray(at, space).toString("latin1"));
    if (space < 0 || !Number.isSafeInteger(length) || length <= 0 || at + length > data.length) {
      throw new CorruptArchiveError(`Cannot read the pax header ${where}: a record length is wrong`);
    }
    const record = data.subarray(space + 1, at + length - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq < 0 || data[at + length - 1] !== 0x0a) {
      throw new CorruptArchiveError(`Cannot read the pax header ${where}: a record is malformed`);
    }
    records.push([record.slice(0, eq), record.slice(eq + 1)]);
    at += length;
  }
  return records;
}

function safeInt(value: string | undefined, what: string): number {
  const n = Number(value);
  if (value === undefined || !/^[0-9]+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new CorruptArchiveError(`Cannot read ${what}: "${value ?? ""}" is not a byte count`);
  }
  return n;
}

/** Checks a sparse map: ordered, not overlapping, inside the real size. */
export function checkExtents(extents: readonly Extent[], realSize: number, entry: string): void {
  let end = 0;
  for (const e of extents) {
    if (e.offset < end || e.offset + e.size > realSize) {
      throw new CorruptArchiveError(
        `Cannot restore "${entry}": its sparse map has an extent at ${e.offset} (+${e.size}) out of order or past the real size ${realSize}`,
      );
    }
    end = e.offset + e.size;
  }
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
      if (isZero(block)) return undefined;
      if (!checksumOk(block))
        throw new CorruptArchiveError(`Cannot read the header at byte ${at}: bad checksum`);
      const type = String.fromCharCode(block[156]!) === "\0" ? "0" : String.fromCharCode(block[156]!);
      let size = number(block, 124, 12, `the size in the header at byte ${at}`);
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
        } else if (type === "L") longName = text(body, 0, body.length);
        continue;
      }
      const ustar = block.subarray(257, 262).toString("latin1") === "ustar";
      const prefix = ustar ? text(block, 345, 155) : "";
      let name =
        pax.get("path") ??
        longName ??
        (prefix !== "" ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
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

function pairs(numbers: number[], where: string): Extent[] {
  if (numbers.length % 2 !== 0)
    throw new CorruptArchiveError(`Cannot read ${where}: its sparse map has an odd count`);
  const out: Extent[] = [];
  for (let i = 0; i < numbers.length; i += 2) out.push({ offset: numbers[i]!, size: numbers[i + 1]! });
  return out;
}

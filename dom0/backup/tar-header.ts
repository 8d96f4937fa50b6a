/**
 * Tar header blocks, byte for byte as Python's `tarfile` writes them in
 * PAX_FORMAT (which is what Qubes' `qubes.tarwriter` uses): a ustar block
 * with POSIX magic, preceded when needed by a pax extended header named
 * `././@PaxHeader`. Pure functions: no I/O.
 */
import { BLOCK_SIZE, paddingFor } from "./sparse-map.js";

/** ustar field widths (POSIX.1-1988). */
const NAME_LENGTH = 100;
/** Numbers above this do not fit 11 octal digits; pax carries them (tarfile: `8 ** (digits - 1)`). */
const MAX_OCTAL_SIZE = 8 ** 11;

export const TYPE_FILE = "0";
export const TYPE_PAX = "x";

export interface UstarFields {
  readonly name: string;
  readonly size: number;
  readonly type: string;
  readonly mode: number;
  readonly mtime: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

/** One ustar block; uid/gid 0, empty owner names, empty device fields (Python >= 3.11 leaves them NUL). */
export function formatUstarBlock(fields: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  // Python encodes with "ascii"/"replace": a non-ASCII character becomes "?".
  const name = Buffer.from(fields.name.replace(/[^\x00-\x7f]/g, "?"), "ascii").subarray(0, NAME_LENGTH);
  name.copy(block, 0);
  block.write(octal(fields.mode & 0o7777, 8), 100, "ascii");
  block.write(octal(0, 8), 108, "ascii");
  block.write(octal(0, 8), 116, "ascii");
  block.write(octal(fields.size, 12), 124, "ascii");
  block.write(octal(fields.mtime, 12), 136, "ascii");
  block.write("        ", 148, "ascii");
  block.write(fields.type, 156, "ascii");
  block.write("ustar\x0000", 257, "ascii");
  let sum = 0;
  for (const byte of block) sum += byte;
  // tarfile writes "%06o\0" and keeps the eighth byte of the field a space.
  block.write(`${sum.toString(8).padStart(6, "0")}\0`, 148, "ascii");
  return block;
}

/** pax records `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including itself. */
export function formatPaxRecords(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const records = headers.map(([key, value]) => {
    const bodyLength = Buffer.byteLength(key) + Buffer.byteLength(value) + 3;
    let length = bodyLength;
    while (length !== bodyLength + String(length).length) length = bodyLength + String(length).length;
    return Buffer.from(`${length} ${key}=${value}\n`, "utf8");
  });
  return Buffer.concat(records);
}

export interface EntryHeader {
  readonly name: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: number;
  /** pax keys in the order they are written (the reference writes them in insertion order). */
  readonly pax: ReadonlyArray<readonly [string, string]>;
}

/**
 * The header blocks of one regular-file entry. Like tarfile's PAX_FORMAT:
 * `path` is added when the name is not ASCII or longer than 100 bytes, and
 * `size` when it exceeds 11 octal digits (volumes of 8 GiB and more), in
 * which case the ustar field holds 0.
 */
export function formatEntryHeader(entry: EntryHeader): Buffer {
  const pax: Array<readonly [string, string]> = [...entry.pax];
  const keys = new Set(pax.map(([key]) => key));
  if (!keys.has("path") && (/[^\x00-\x7f]/.test(entry.name) || entry.name.length > NAME_LENGTH)) {
    pax.push(["path", entry.name]);
  }
  const bigSize = entry.size >= MAX_OCTAL_SIZE;
  if (bigSize && !keys.has("size")) pax.push(["size", String(entry.size)]);
  const ustar = formatUstarBlock({
    name: entry.name,
    size: bigSize ? 0 : entry.size,
    type: TYPE_FILE,
    mode: entry.mode,
    mtime: entry.mtime,
  });
  if (pax.length === 0) return ustar;
  const records = formatPaxRecords(pax);
  const paxBlock = formatUstarBlock({
    name: "././@PaxHeader",
    size: records.length,
    type: TYPE_PAX,
    mode: 0,
    mtime: 0,
  });
  return Buffer.concat([paxBlock, records, Buffer.alloc(paddingFor(records.length)), ustar]);
}

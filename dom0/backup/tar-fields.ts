/**
 * Field-level parsing for the tar reader: ustar numbers and strings, header
 * checksums, pax records and sparse maps. Pure functions on buffers.
 */
import { InvalidInputError } from "../../shared/errors.js";
import { BLOCK_SIZE, type Extent } from "./sparse-map.js";

export class CorruptArchiveError extends InvalidInputError {
  override name = "CorruptArchiveError";
}

export function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

export function parseTextField(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

export function parseNumberField(block: Buffer, start: number, length: number, what: string): number {
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

export function hasValidChecksum(block: Buffer): boolean {
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

export function safeInt(value: string | undefined, what: string): number {
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

/** Offset/size number pairs as extents. */
export function pairs(numbers: number[], where: string): Extent[] {
  if (numbers.length % 2 !== 0)
    throw new CorruptArchiveError(`Cannot read ${where}: its sparse map has an odd count`);
  const out: Extent[] = [];
  for (let i = 0; i < numbers.length; i += 2) out.push({ offset: numbers[i]!, size: numbers[i + 1]! });
  return out;
}

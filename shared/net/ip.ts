/**
 * IPv4/IPv6 parsing, formatting and validation. Pure, no I/O.
 *
 * Written here rather than taken from a library: the rules are strict and few
 * (IPv4 with exactly three dots and no leading zeros, canonical RFC 5952 IPv6,
 * contiguous masks), and every error must name the offending value.
 */
import { InvalidInputError } from "../errors.js";

const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;

/** Parses dotted-quad IPv4 into an unsigned 32-bit number. */
export function parseIPv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4) throw new InvalidInputError(`Cannot parse "${text}": not an IPv4 address`);
  let value = 0;
  for (const part of parts) {
    if (!IPV4_PART.test(part) || Number(part) > 255) {
      throw new InvalidInputError(`Cannot parse "${text}": not an IPv4 address`);
    }
    value = value * 256 + Number(part);
  }
  return value >>> 0;
}

export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

export function isIPv4(text: string): boolean {
  try {
    parseIPv4(text);
    return true;
  } catch {
    return false;
  }
}

/** Parses any textual IPv6 form (including embedded IPv4) into a 128-bit bigint. */
export function parseIPv6(text: string): bigint {
  const fail = (): never => {
    throw new InvalidInputError(`Cannot parse "${text}": not an IPv6 address`);
  };
  if (text.length === 0 || text.length > 45) fail();
  let body = text;
  let tailWords: number[] = [];
  const lastColon = body.lastIndexOf(":");
  if (body.includes(".")) {
    const v4 = body.slice(lastColon + 1);
    let n = 0;
    try {
      n = parseIPv4(v4);
    } catch {
      fail();
    }
    tailWords = [n >>> 16, n & 0xffff];
    body = body.slice(0, lastColon + 1);
    if (body.endsWith("::")) {
      // keep as is: "::1.2.3.4"
    } else if (body.endsWith(":")) body = body.slice(0, -1);
  }
  const halves = body.split("::");
  if (halves.length > 2) fail();
  const parseWords = (part: string): number[] => {
    if (part === "") return [];
    return part.split(":").map((w) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) fail();
      return Number.parseInt(w, 16);
    });
  };
  let words: number[];
  if (halves.length === 2) {
    const head = parseWords(halves[0] ?? "");
    const tail = [...parseWords(halves[1] ?? ""), ...tailWords];
    const missing = 8 - head.length - tail.length;
    if (missing < 1) fail();
    words = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    words = [...parseWords(halves[0] ?? ""), ...tailWords];
    if (words.length !== 8) fail();
  }
  let value = 0n;
  for (const w of words) value = (value << 16n) | BigInt(w);
  return value;
}

/** Formats a 128-bit value in the canonical RFC 5952 form (lower case, longest zero run compressed). */
export function formatIPv6(value: bigint): string {
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export function isIPv6(text: string): boolean {
  try {
    parseIPv6(text);
    return true;
  } catch {
    return false;
  }
}

/** Canonical text of an IPv6 address (throws on invalid input). */
export function normalizeIPv6(text: string): string {
  return formatIPv6(parseIPv6(text));
}

export interface Cidr {
  readonly family: 4 | 6;
  /** canonical address text, host bits cleared */
  readonly address: string;
  readonly prefix: number;
}

function parsePrefix(text: string, whole: string, max: number): number {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text) || Number(text) > max) {
    throw new InvalidInputError(`Cannot parse "${whole}": prefix length must be 0..${max}`);
  }
  return Number(text);
}

/** Parses `A.B.C.D[/P]`; the prefix defaults to 32. Host bits must be zero unless `allowHostBits`. */
export function parseCidr4(text: string, options: { allowHostBits?: boolean } = {}): Cidr {
  const [addr = "", prefixText, extra] = text.split("/");
  if (extra !== undefined) throw new InvalidInputError(`Cannot parse "${text}": more than one "/"`);
  const value = parseIPv4(addr);
  const prefix = prefixText === undefined ? 32 : parsePrefix(prefixText, text, 32);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((value & ~mask) >>> 0 !== 0 && !options.allowHostBits) {
    throw new InvalidInputError(
      `Cannot parse "${text}": host bits set (network is ${formatIPv4((value & mask) >>> 0)}/${prefix})`,
    );
  }
  return { family: 4, address: formatIPv4((value & mask) >>> 0), prefix };
}

/** Parses `ADDR[/P]` for IPv6; the prefix defaults to 128. */
export function parseCidr6(text: string, options: { allowHostBits?: boolean } = {}): Cidr {
  const [addr = "", prefixText, extra] = text.split("/");
  if (extra !== undefined) throw new InvalidInputError(`Cannot parse "${text}": more than one "/"`);
  const value = parseIPv6(addr);
  const prefix = prefixText === undefined ? 128 : parsePrefix(prefixText, text, 128);
  const all = (1n << 128n) - 1n;
  const mask = prefix === 0 ? 0n : (all << BigInt(128 - prefix)) & all;
  if ((value & ~mask & all) !== 0n && !options.allowHostBits) {
    throw new InvalidInputError(
      `Cannot parse "${text}": host bits set (network is ${formatIPv6(value & mask)}/${prefix})`,
    );
  }
  return { family: 6, address: formatIPv6(value & mask), prefix };
}

/** Dotted netmask for a prefix length (0..32). */
export function netmaskFromPrefix(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new InvalidInputError(`Cannot make a netmask from "${prefix}": prefix length must be 0..32`);
  }
  return formatIPv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/**
 * Prefix length of a netmask given as dotted quad or as a prefix length.
 * Rejects non-contiguous masks such as 255.0.255.0 (Qubes accepts them).
 */
export function prefixFromNetmask(text: string): number {
  if (/^(0|[1-9][0-9]?)$/.test(text)) return parsePrefix(text, text, 32);
  let value: number;
  try {
    value = parseIPv4(text);
  } catch {
    throw new InvalidInputError(`Cannot parse netmask "${text}": not a dotted mask or a prefix length`);
  }
  const inverted = ~value >>> 0;
  if ((inverted & (inverted + 1)) !== 0) {
    throw new InvalidInputError(`Cannot parse netmask "${text}": the mask is not contiguous`);
  }
  let prefix = 0;
  for (let v = value; v !== 0; v = (v << 1) >>> 0) prefix++;
  return prefix;
}

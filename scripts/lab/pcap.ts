/**
 * Reading tcpdump's pcap files and searching packets for an address (pure).
 * The leak probe looks at every byte of every received frame — headers,
 * payloads and the packets quoted inside ICMP errors alike.
 */
import { parseIPv4 } from "../../shared/net/ip.js";

/** pcap magic numbers: microsecond and nanosecond timestamps (pcap-savefile(5)) */
const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;

/** The frames of a pcap file, in order. Throws on a file that is not pcap. */
export function parsePcap(file: Buffer): Buffer[] {
  if (file.length < GLOBAL_HEADER) return [];
  const le = file.readUInt32LE(0);
  const be = file.readUInt32BE(0);
  const little = le === MAGIC_US || le === MAGIC_NS;
  if (!little && be !== MAGIC_US && be !== MAGIC_NS) {
    throw new Error(`Cannot read the capture: magic 0x${be.toString(16)} is not pcap`);
  }
  const u32 = (at: number) => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const frames: Buffer[] = [];
  let at = GLOBAL_HEADER;
  while (at + RECORD_HEADER <= file.length) {
    const length = u32(at + 8);
    const start = at + RECORD_HEADER;
    // tcpdump -U flushes whole records, but a capture stopped mid-write may end short.
    if (start + length > file.length) break;
    frames.push(file.subarray(start, start + length));
    at = start + length;
  }
  return frames;
}

/** The four bytes of an IPv4 address in network order, and its dotted text. */
export function addressNeedles(ip: string): Buffer[] {
  const binary = Buffer.alloc(4);
  binary.writeUInt32BE(parseIPv4(ip));
  return [binary, Buffer.from(ip, "latin1")];
}

/** Indexes of frames that contain `ip` anywhere, in binary or as text. */
export function framesContaining(frames: readonly Buffer[], ip: string): number[] {
  const needles = addressNeedles(ip);
  return frames.flatMap((frame, i) => (needles.some((n) => frame.includes(n)) ? [i] : []));
}

/** Ethernet → IPv4 fields the probes name; `undefined` for non-IPv4 frames. */
export interface Ipv4Summary {
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  /** ICMP type/code when protocol is 1 */
  readonly icmp?: { readonly type: number; readonly code: number };
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERNET_HEADER = 14;

function dotted(frame: Buffer, at: number): string {
  return [frame[at], frame[at + 1], frame[at + 2], frame[at + 3]].join(".");
}

export function summarizeFrame(frame: Buffer): Ipv4Summary | undefined {
  if (frame.length < ETHERNET_HEADER + 20 || frame.readUInt16BE(12) !== ETHERTYPE_IPV4) return undefined;
  const ip = ETHERNET_HEADER;
  const headerLength = ((frame[ip] ?? 0) & 0x0f) * 4;
  const protocol = frame[ip + 9] ?? 0;
  const summary = { src: dotted(frame, ip + 12), dst: dotted(frame, ip + 16), protocol };
  const icmpAt = ip + headerLength;
  if (protocol === 1 && frame.length >= icmpAt + 2) {
    return { ...summary, icmp: { type: frame[icmpAt] ?? 0, code: frame[icmpAt + 1] ?? 0 } };
  }
  return summary;
}

/** Names of ICMP messages the probes expect (RFC 792, RFC 1812 for code 13). */
export function icmpName(type: number, code: number): string {
  if (type === 0) return "echo-reply";
  if (type === 11) return "time-exceeded";
  if (type === 3) {
    const codes: Record<number, string> = {
      0: "net-unreachable",
      1: "host-unreachable",
      3: "port-unreachable",
      13: "admin-prohibited",
    };
    return codes[code] ?? `unreachable/${code}`;
  }
  return `icmp-${type}/${code}`;
}

/**
 * A tiny authoritative DNS server over UDP for tests and the lab: answers A
 * and AAAA questions from a JSON zone file (re-read on every query, so a test
 * can change answers while it runs) and/or `--record` arguments, with
 * per-name TTLs. Unknown names get NXDOMAIN; a known name without records of
 * the asked type gets an empty NOERROR answer (what resolvers call NODATA).
 *
 *   node dist/scripts/servers/dns-server.js --listen 10.139.1.1 --port 53 \
 *     --zone zone.json --record far.example=203.0.113.5@5 --ttl 60
 *
 * zone.json: { "far.example": { "A": ["203.0.113.5"], "AAAA": ["2001:db8::5"], "ttl": 5 } }
 */
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Command } from "commander";
import { z } from "zod";
import { isIPv4, isIPv6, parseIPv6 } from "../../shared/net/ip.js";

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;

const entrySchema = z.strictObject({
  A: z.array(z.string().refine(isIPv4, { message: "not an IPv4 address" })).default([]),
  AAAA: z.array(z.string().refine(isIPv6, { message: "not an IPv6 address" })).default([]),
  ttl: z.number().int().min(0).max(2147483647).optional(),
});
export const zoneSchema = z.record(z.string().regex(/^[a-z0-9._-]+$/), entrySchema);
export type Zone = z.infer<typeof zoneSchema>;

export interface Question {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly klass: number;
  /** the question section as received, echoed in the answer */
  readonly raw: Buffer;
  readonly recursionDesired: boolean;
}

/** Parses a query with exactly one question; `undefined` for anything else. */
export function parseQuery(message: Buffer): Question | undefined {
  if (message.length < 12 || (message[2]! & 0x80) !== 0 || message.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    const length = message[offset];
    if (length === undefined || length > 63) return undefined;
    offset++;
    if (length === 0) break;
    if (offset + length > message.length) return undefined;
    labels.push(message.toString("latin1", offset, offset + length).toLowerCase());
    offset += length;
  }
  if (offset + 4 > message.length) return undefined;
  return {
    id: message.readUInt16BE(0),
    name: labels.join("."),
    type: message.readUInt16BE(offset),
    klass: message.readUInt16BE(offset + 2),
    raw: message.subarray(12, offset + 4),
    recursionDesired: (message[2]! & 1) === 1,
  };
}

function addressBytes(type: number, address: string): Buffer {
  if (type === TYPE_A) return Buffer.from(address.split(".").map(Number));
  const bytes = Buffer.alloc(16);
  const value = parseIPv6(address);
  bytes.writeBigUInt64BE(value >> 64n, 0);
  bytes.writeBigUInt64BE(value & 0xffffffffffffffffn, 8);
  return bytes;
}

/** The answer to one question from a zone (authoritative, no recursion). */
export function buildResponse(question: Question, zone: Zone, defaultTtl: number): Buffer {
  const entry = zone[question.name];
  const rcode = question.klass !== CLASS_IN ? RCODE_NOTIMP : entry === undefined ? RCODE_NXDOMAIN : 0;
  // other record types of a known name: an empty answer (NODATA)
  const records =
    rcode !== 0 || entry === undefined
      ? []
      : question.type === TYPE_A
        ? entry.A
        : question.type === TYPE_AAAA
          ? entry.AAAA
          : [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(question.id, 0);
  // QR=1, AA=1, RD copied; RA=0 (we do not recurse)
  header.writeUInt16BE(0x8400 | (question.recursionDesired ? 0x100 : 0) | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const ttl = entry?.ttl ?? defaultTtl;
  const answers = records.map((address) => {
    const data = addressBytes(question.type, address);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question's name
    rr.writeUInt16BE(question.type, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(data.length, 10);
    return Buffer.concat([rr, data]);
  });
  return Buffer.concat([header, question.raw, ...answers]);
}

function formErr(message: Buffer): Buffer | undefined {
  if (message.length < 12) return undefined;
  const header = Buffer.from(message.subarray(0, 12));
  header.writeUInt16BE(0x8000 | RCODE_FORMERR, 2);
  header.fill(0, 4, 12);
  return header;
}

/** `NAME=ADDR[,ADDR...][@TTL]` → zone entries (A or AAAA by address form). */
export function parseRecordArgs(args: readonly string[]): Zone {
  const zone: Record<string, { A: string[]; AAAA: string[]; ttl?: number }> = {};
  for (const arg of args) {
    const match = /^([a-z0-9._-]+)=([^@]+)(?:@([0-9]+))?$/.exec(arg);
    if (match === null) throw new Error(`Cannot parse record "${arg}": expected NAME=ADDR[,ADDR...][@TTL]`);
    const [, name = "", addresses = "", ttl] = match;
    const entry = zone[name] ?? { A: [], AAAA: [] };
    for (const address of addresses.split(",")) {
      if (isIPv4(address)) entry.A.push(address);
      else if (isIPv6(address)) entry.AAAA.push(address);
      else throw new Error(`Cannot parse record "${arg}": "${address}" is not an IP address`);
    }
    if (ttl !== undefined) entry.ttl = Number(ttl);
    zone[name] = entry;
  }
  return zoneSchema.parse(zone);
}

function readZone(file: string | undefined, fromArgs: Zone): Zone {
  if (file === undefined) return fromArgs;
  const parsed = zoneSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success)
    throw new Error(`Cannot read zone "${file}": ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return { ...parsed.data, ...fromArgs };
}

async function main(): Promise<void> {
  const program = new Command("dns-server")
    .option("--listen <address>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "UDP port", "53")
    .option("--zone <file>", "JSON zone file, re-read on every query")
    .option(
      "--record <name=addr[@ttl]>",
      "a record (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option("--ttl <seconds>", "TTL of records without their own", "60")
    .parse();
  const options = program.opts<{
    listen: string;
    port: string;
    zone?: string;
    record: string[];
    ttl: string;
  }>();
  const fromArgs = parseRecordArgs(options.record);
  const defaultTtl = Number(options.ttl);
  readZone(options.zone, fromArgs); // fail at start on a bad zone, not on the first query
  const socket = dgram.createSocket(isIPv6(options.listen) ? "udp6" : "udp4");
  socket.on("message", (message, peer) => {
    const question = parseQuery(message);
    let reply: Buffer | undefined;
    try {
      reply =
        question === undefined
          ? formErr(message)
          : buildResponse(question, readZone(options.zone, fromArgs), defaultTtl);
    } catch (error) {
      process.stderr.write(`WARN ${error instanceof Error ? error.message : String(error)}\n`);
    }
    if (reply !== undefined) socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", (error) =>
      reject(
        new Error(`Cannot listen on "${options.listen}:${options.port}": ${error.message}`, { cause: error }),
      ),
    );
    socket.bind(Number(options.port), options.listen, resolve);
  });
  process.stdout.write(`listening ${options.listen}:${socket.address().port}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

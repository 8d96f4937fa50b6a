/**
 * Seeded fuzzing of the daemon: random and mutated frames, split at random
 * points, on many connections. The daemon must never crash, must only ever
 * send legal reply types, and the keys it was given must survive unchanged.
 * Reproduce a run with QUBESDB_FUZZ_SEED=<seed printed below>.
 */
import t from "tap";
import { FrameDecoder } from "../../../shared/qubesdb/codec.js";
import { RawConnection, rawFrame, startTestDaemon } from "../../helpers/qubesdb.js";

const CASES = 20_000;
const KEEP = "/fuzz/keep/";

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const seed = Number(process.env["QUBESDB_FUZZ_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
const random = prng(seed);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const PATH_CHARS = "abcxyz019-_.:@/";
const NASTY = [" ", "~", "%", "\x01", "\x7f", "\x80", "\xff", "+", ","];

function randomPath(): Buffer {
  switch (int(6)) {
    case 0:
      return Buffer.from("", "latin1");
    case 1: // 64 bytes, no NUL
      return Buffer.from(`/${"p".repeat(63)}`, "latin1");
    case 2: {
      let path = "/";
      for (let i = int(12); i > 0; i--) path += pick([...PATH_CHARS, ...NASTY]);
      return Buffer.from(path, "latin1");
    }
    case 3: // NUL in the middle, garbage after it
      return Buffer.from(`/a\0${"\xaa".repeat(int(40))}`, "latin1");
    default: {
      let path = pick(["/", "/f", "/fuzz/", "/x/", "/fuzz/other/", "-", "/a"]);
      for (let i = int(8); i > 0; i--) path += pick([...PATH_CHARS]);
      return Buffer.from(path, "latin1");
    }
  }
}

function randomPayload(): Buffer {
  const length = pick([0, 0, 1, 5, 100, 3071, 3072, int(4000)]);
  const payload = Buffer.alloc(length);
  for (let i = 0; i < length; i++) payload[i] = random() < 0.02 ? 0 : 1 + int(255);
  return payload;
}

/** The path as the daemon will see it: byte 63 forced to NUL, cut at the first NUL. */
function effectivePath(header: Buffer): string {
  const field = Buffer.from(header.subarray(1, 65));
  field[63] = 0;
  const end = field.indexOf(0);
  return field.toString("latin1", 0, end);
}

/** Never let the fuzzer remove or overwrite the keys whose survival we check. */
function protect(frame: Buffer): Buffer {
  const path = effectivePath(frame);
  const type = frame[0]!;
  const touchesKept = path.startsWith(KEEP.slice(0, -1)) || KEEP.startsWith(path);
  if ((type === 1 || type === 4) && touchesKept) frame[0] = 0;
  return frame;
}

function consistentFrame(): Buffer {
  const type = random() < 0.8 ? int(7) : int(256);
  const frame = rawFrame(type, randomPath(), randomPayload());
  if (random() < 0.3) {
    // mutate type, path or padding bytes; data_len stays consistent with the payload
    for (let i = 1 + int(3); i > 0; i--) frame[int(68)] = int(256);
  }
  return protect(frame);
}

function inconsistentFrame(): Buffer {
  const frame = consistentFrame();
  frame.writeUInt32LE(pick([frame.readUInt32LE(68) + 1 + int(100), 0xffffffff, 3072 + int(10000)]), 68);
  return frame;
}

t.test(`the daemon survives ${CASES} random and mutated messages (seed ${seed})`, async (t) => {
  t.comment(`QUBESDB_FUZZ_SEED=${seed}`);
  const db = await startTestDaemon(t);
  const control = await db.client();
  const kept = new Map<string, string>();
  for (let i = 0; i < 50; i++) kept.set(`${KEEP}${i}`, `value-${i}-${"v".repeat(i)}`);
  for (const [key, value] of kept) await control.write(key, value);

  let illegal = 0;
  let replies = 0;
  let connection: RawConnection | undefined;
  const decoder = () => new FrameDecoder(() => true);
  const watchReplies = (c: RawConnection) => {
    const d = decoder();
    c.socket.on("data", (chunk: Buffer) =>
      d.push(chunk, (frame) => {
        replies++;
        if (frame.type < 7 || frame.type > 13 || frame.dataLen > 3071) illegal++;
        return true;
      }),
    );
  };
  for (let n = 0; n < CASES; n++) {
    if (connection === undefined || connection.closed || n % 100 === 0) {
      // end(), not destroy(): queued bytes still reach the daemon
      connection?.socket.end();
      connection = await RawConnection.connect(random() < 0.2 ? db.roSocket : db.socket, t);
      watchReplies(connection);
    }
    const frames: Buffer[] = [];
    for (let i = 1 + int(4); i > 0; i--) frames.push(consistentFrame());
    const broken = random() < 0.05;
    if (broken) frames.push(inconsistentFrame());
    const bytes = Buffer.concat(frames);
    let offset = 0;
    while (offset < bytes.length && !connection.closed) {
      const size = random() < 0.5 ? bytes.length - offset : 1 + int(bytes.length - offset);
      connection.socket.write(bytes.subarray(offset, offset + size));
      offset += size;
      if (random() < 0.1) await new Promise((r) => setImmediate(r));
    }
    if (broken) {
      connection.socket.end();
      connection = undefined;
    }
    if (n % 250 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  connection?.socket.end();
  await new Promise((r) => setTimeout(r, 200));

  const after = await db.client();
  const stored = await after.multiread(KEEP);
  t.same(
    [...stored].map(([k, v]) => [k, v.toString()]),
    [...kept].sort(([a], [b]) => (a < b ? -1 : 1)),
    "the kept keys survived unchanged",
  );
  t.ok(replies > CASES, `the daemon answered (${replies} replies)`);
  t.equal(illegal, 0, "every reply had a legal type and length");
  t.notMatch(db.stderr(), /ERROR|Uncaught|TypeError/, "no error in the daemon log");
});

/**
 * QubesDB daemon benchmark: `npm run build && node dist/scripts/bench/qubesdb.js`.
 *
 * Runs the built daemon and, as the in-run reference, a bare unix-socket echo
 * server answering 72-byte frames (both as separate Node processes), and
 * measures with the same minimal raw client: sequential round trips (1 in
 * flight), pipelined READs (64 in flight), a MULTIREAD of 10,000 keys, and the
 * time until 50 watchers all got the event of one WRITE. Prints ratios
 * against the echo server and the reference C daemon's figures on this machine
 * class (docs/benchmarks.md).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectQubesDb } from "../../shared/qubesdb/client.js";
import { encodeMessage, FrameDecoder, MessageType } from "../../shared/qubesdb/codec.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const DAEMON_JS = resolve(HERE, "../../shared/qubesdb/cli/qubesdb-daemon.js");
const DURATION_MS = Number(process.env["BENCH_MS"] ?? 1000);
const ROUNDS = 3;

/** Reference C daemon figures on this machine class (from the issue). */
const C_REFERENCE = { sequential: 15_000, pipelined: 115_000, fanoutMeanMs: 0.27 };

/**
 * The in-run reference: a bare server that parses nothing but 72-byte frames.
 * It echoes each frame to its sender; a frame of type WATCH (5) also marks
 * the sender as a watcher, and a WRITE (1) is also copied to every watcher,
 * so fan-out can be compared with the least work a server can do.
 */
const ECHO_SERVER = `
const net = require("node:net");
const fs = require("node:fs");
const path = process.argv[1];
const watchers = new Set();
try { fs.unlinkSync(path); } catch {}
net.createServer((s) => {
  let pending = Buffer.alloc(0);
  s.on("data", (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    const whole = pending.length - (pending.length % 72);
    if (whole > 0) {
      const frames = pending.subarray(0, whole);
      s.write(frames);
      if (frames[0] === 5) watchers.add(s);
      if (frames[0] === 1) for (const w of watchers) w.write(frames.subarray(0, 72));
    }
    pending = pending.subarray(whole);
  });
  s.on("error", () => {});
  s.on("close", () => watchers.delete(s));
}).listen(path, () => process.stderr.write("ready\\n"));
`;

/** A minimal client that counts whole replies, to measure the server and not a client library. */
class RawClient {
  readonly socket: net.Socket;
  readonly #decoder = new FrameDecoder(() => true);
  #onReply: (type: number, path: string) => void = () => {};

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) =>
      this.#decoder.push(chunk, (frame) => {
        this.#onReply(frame.type, frame.path);
        return true;
      }),
    );
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((r, reject) => {
      const socket = net.createConnection({ path }, () => r(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  onReply(handler: (type: number, path: string) => void): void {
    this.#onReply = handler;
  }

  close(): void {
    this.socket.destroy();
  }
}

function startProcess(args: string[]): Promise<ChildProcess> {
  return new Promise((r, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`Cannot start ${args.join(" ")}: exited with ${code}`)));
    child.stderr?.once("data", () => r(child));
  });
}

/** Round trips per second with `inFlight` requests outstanding at any time. */
async function roundTrips(path: string, request: Buffer, inFlight: number): Promise<number> {
  const client = await RawClient.connect(path);
  let done = 0;
  let stop = false;
  const finished = new Promise<void>((r) => {
    let outstanding = 0;
    client.onReply(() => {
      done++;
      outstanding--;
      if (stop) {
        if (outstanding === 0) r();
        return;
      }
      outstanding++;
      client.socket.write(request);
    });
    for (let i = 0; i < inFlight; i++) {
      outstanding++;
      client.socket.write(request);
    }
  });
  const start = performance.now();
  await new Promise((r) => setTimeout(r, DURATION_MS));
  stop = true;
  const elapsed = performance.now() - start;
  await finished;
  client.close();
  return (done / elapsed) * 1000;
}

async function multireadTime(path: string): Promise<number> {
  const client = await RawClient.connect(path);
  const value = Buffer.from("x".repeat(32));
  let acks = 0;
  await new Promise<void>((r) => {
    client.onReply(() => {
      if (++acks === 10_000) r();
    });
    const writes: Buffer[] = [];
    for (let i = 0; i < 10_000; i++)
      writes.push(encodeMessage(MessageType.CMD_WRITE, `/bench/m/${i}`, value));
    client.socket.write(Buffer.concat(writes));
  });
  const times: number[] = [];
  for (let round = 0; round < 20; round++) {
    const start = performance.now();
    await new Promise<void>((r) => {
      client.onReply((_type, p) => {
        if (p === "") r();
      });
      client.socket.write(encodeMessage(MessageType.CMD_MULTIREAD, "/bench/m/"));
    });
    times.push(performance.now() - start);
  }
  client.close();
  return median(times);
}

async function fanout(
  path: string,
  watchers: number,
  rounds: number,
  write: Buffer,
): Promise<{ mean: number; median: number; max: number }> {
  const clients = await Promise.all(Array.from({ length: watchers }, () => RawClient.connect(path)));
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((r) => {
          c.onReply(() => r());
          c.socket.write(encodeMessage(MessageType.CMD_WATCH, "/bench/fan"));
        }),
    ),
  );
  const writer = await RawClient.connect(path);
  writer.onReply(() => {});
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let got = 0;
    const start = performance.now();
    await new Promise<void>((r) => {
      for (const c of clients) {
        c.onReply(() => {
          if (++got === watchers) r();
        });
      }
      writer.socket.write(write);
    });
    times.push(performance.now() - start);
  }
  for (const c of [...clients, writer]) c.close();
  return {
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    median: median(times),
    max: Math.max(...times),
  };
}

/** The same READ loops through the real client library (`connectQubesDb`). */
async function libraryRoundTrips(path: string): Promise<{ sequential: number; pipelined: number }> {
  const client = await connectQubesDb({ socket: path, reconnect: false });
  const measure = async (inFlight: number) => {
    let done = 0;
    const deadline = performance.now() + DURATION_MS;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (performance.now() < deadline) {
          await client.read("/bench/key");
          done++;
        }
      }),
    );
    return (done / (performance.now() - start)) * 1000;
  };
  const sequential = await measure(1);
  const pipelined = await measure(64);
  await client.close();
  return { sequential, pipelined };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const progress = (step: string) => process.stderr.write(`${step}...\n`);
const ratio = (a: number, b: number) => (a / b).toFixed(2);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "qdb-bench-"));
  const dbSocket = join(dir, "qubesdb.sock");
  const echoSocket = join(dir, "echo.sock");
  const children: ChildProcess[] = [];
  try {
    children.push(await startProcess([DAEMON_JS, "--socket", dbSocket]));
    children.push(await startProcess(["-e", ECHO_SERVER, echoSocket]));
    // the daemon logs "listening" on stderr once ready; give both a moment to settle
    await new Promise((r) => setTimeout(r, 200));
    const seed = await RawClient.connect(dbSocket);
    await new Promise<void>((r) => {
      seed.onReply(() => r());
      seed.socket.write(encodeMessage(MessageType.CMD_WRITE, "/bench/key", Buffer.from("value")));
    });
    seed.close();

    const read = encodeMessage(MessageType.CMD_READ, "/bench/key");
    const write = encodeMessage(MessageType.CMD_WRITE, "/bench/key", Buffer.from("value"));
    const echo = encodeMessage(MessageType.CMD_READ, "/bench/key");
    // Best of ROUNDS, interleaving the echo server and the daemon, so that a burst of load on
    // this shared machine does not land on one side of a ratio only.
    let echoSequential = 0;
    let echoPipelined = 0;
    let writeSequential = 0;
    let readSequential = 0;
    let readPipelined = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      progress(`round trips, round ${round} of ${ROUNDS}`);
      echoSequential = Math.max(echoSequential, await roundTrips(echoSocket, echo, 1));
      writeSequential = Math.max(writeSequential, await roundTrips(dbSocket, write, 1));
      readSequential = Math.max(readSequential, await roundTrips(dbSocket, read, 1));
      echoPipelined = Math.max(echoPipelined, await roundTrips(echoSocket, echo, 64));
      readPipelined = Math.max(readPipelined, await roundTrips(dbSocket, read, 64));
    }
    progress("multiread");
    const multiread = await multireadTime(dbSocket);
    progress("fan");
    const fan = await fanout(
      dbSocket,
      50,
      200,
      encodeMessage(MessageType.CMD_WRITE, "/bench/fan", Buffer.from("1")),
    );
    // an empty value: the echo server only understands bare 72-byte frames
    progress("echoFan");
    const echoFan = await fanout(echoSocket, 50, 200, encodeMessage(MessageType.CMD_WRITE, "/bench/fan"));
    progress("library");
    const library = { sequential: 0, pipelined: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const measured = await libraryRoundTrips(dbSocket);
      library.sequential = Math.max(library.sequential, measured.sequential);
      library.pipelined = Math.max(library.pipelined, measured.pipelined);
    }

    const rows: Array<[string, string, string, string]> = [
      ["measurement", "qubesdb-daemon (TS)", "vs echo server", "vs C reference"],
      [
        "WRITE round trips/s, 1 in flight",
        fmt(writeSequential),
        (writeSequential / echoSequential).toFixed(2),
        (writeSequential / C_REFERENCE.sequential).toFixed(2),
      ],
      [
        "READ round trips/s, 1 in flight",
        fmt(readSequential),
        (readSequential / echoSequential).toFixed(2),
        (readSequential / C_REFERENCE.sequential).toFixed(2),
      ],
      [
        "READs/s, 64 in flight",
        fmt(readPipelined),
        (readPipelined / echoPipelined).toFixed(2),
        (readPipelined / C_REFERENCE.pipelined).toFixed(2),
      ],
      ["MULTIREAD of 10,000 keys (median ms)", multiread.toFixed(2), "-", "-"],
      [
        "50 watchers all notified (mean ms)",
        fan.mean.toFixed(3),
        ratio(fan.mean, echoFan.mean),
        ratio(fan.mean, C_REFERENCE.fanoutMeanMs),
      ],
      ["50 watchers all notified (median ms)", fan.median.toFixed(3), ratio(fan.median, echoFan.median), "-"],
      ["50 watchers all notified (max ms)", fan.max.toFixed(3), ratio(fan.max, echoFan.max), "-"],
      [
        "client library READs/s, 1 in flight",
        fmt(library.sequential),
        ratio(library.sequential, echoSequential),
        ratio(library.sequential, C_REFERENCE.sequential),
      ],
      [
        "client library READs/s, 64 in flight",
        fmt(library.pipelined),
        ratio(library.pipelined, echoPipelined),
        ratio(library.pipelined, C_REFERENCE.pipelined),
      ],
      ["echo server round trips/s, 1 in flight", fmt(echoSequential), "1.00", "-"],
      ["echo server round trips/s, 64 in flight", fmt(echoPipelined), "1.00", "-"],
      ["echo server 50-watcher fan-out (mean ms)", echoFan.mean.toFixed(3), "1.00", "-"],
      ["echo server 50-watcher fan-out (median ms)", echoFan.median.toFixed(3), "1.00", "-"],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows)
      process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")}\n`);
    process.stdout.write(
      `\nC reference (same machine class): ${fmt(C_REFERENCE.sequential)} sequential/s, ` +
        `${fmt(C_REFERENCE.pipelined)} pipelined READs/s (100-130k), ${C_REFERENCE.fanoutMeanMs} ms 50-watcher fan-out. ` +
        "For fan-out a ratio below 1 is better; for the others above 1 is better.\n",
    );
  } finally {
    for (const child of children) child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

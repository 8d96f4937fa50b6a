/**
 * A real `qubesdb-daemon` (the built one in dist/) on a unique temporary
 * socket, for tests of anything that talks QubesDB. Run `npm run build` first.
 *
 *   const db = await startTestDaemon(t);
 *   const client = await db.client();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectQubesDb, type QubesDbSocketClient } from "../../shared/qubesdb/client.js";

/** Path of the built daemon entry point. */
export const DAEMON_JS = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../dist/shared/qubesdb/cli/qubesdb-daemon.js",
);

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestDaemon {
  /** read-write socket path */
  socket: string;
  /** read-only socket path */
  roSocket: string;
  /** the temporary directory holding both sockets */
  dir: string;
  /** a client on the RW socket (`reconnect: false` unless asked), closed in teardown */
  client(options?: { reconnect?: boolean; readOnly?: boolean }): Promise<QubesDbSocketClient>;
  /** kills the daemon (SIGKILL unless told) and waits until it exited */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** starts a fresh daemon (empty database) on the same sockets */
  restart(): Promise<void>;
  /** the daemon's stderr so far */
  stderr(): string;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const socket = net.createConnection({ path });
    socket.once("connect", () => {
      socket.destroy();
      resolveConnect(true);
    });
    socket.once("error", () => resolveConnect(false));
  });
}

async function waitUntilListening(paths: string[], child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Cannot start qubesdb-daemon: it exited: ${log()}`);
    const ready = await Promise.all(paths.map(canConnect));
    if (ready.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`Cannot start qubesdb-daemon: no socket after 10 s: ${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startTestDaemon(t: Teardown): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), `qdb-${process.pid}-`));
  const socket = join(dir, "qubesdb.sock");
  const roSocket = join(dir, "qubesdb.ro.sock");
  let child: ChildProcess | undefined;
  let log = "";
  const clients: QubesDbSocketClient[] = [];

  const start = async () => {
    const started = spawn(process.execPath, [DAEMON_JS, "--socket", socket, "--ro-socket", roSocket], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, NOTIFY_SOCKET: "", QUBES_FAKEIP_LOG: "warn" },
    });
    started.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
    });
    child = started;
    await waitUntilListening([socket, roSocket], started, () => log);
  };

  const stop = async (signal: NodeJS.Signals = "SIGKILL") => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((r) => {
      running.once("exit", () => r());
      running.kill(signal);
    });
  };

  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();

  return {
    socket,
    roSocket,
    dir,
    client: async (options = {}) => {
      const c = await connectQubesDb({
        socket: options.readOnly ? roSocket : socket,
        reconnect: options.reconnect ?? false,
      });
      clients.push(c);
      return c;
    },
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    stderr: () => log,
  };
}

/** One decoded reply as raw tests compare it (spec §8: type, path to its NUL, data_len, payload). */
export interface RawFrame {
  type: number;
  path: string;
  dataLen: number;
  payload: string;
  /** the 72 header bytes as received */
  header: Buffer;
}

/** Builds a request exactly like `struct.pack('<B64s3xI', type, path, len) + payload`. */
export function rawFrame(
  type: number,
  path: string | Buffer,
  payload: string | Buffer = "",
  dataLen?: number,
): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "latin1") : payload;
  const header = Buffer.alloc(72);
  header[0] = type;
  (typeof path === "string" ? Buffer.from(path, "latin1") : path).copy(header, 1, 0, 64);
  header.writeUInt32LE(dataLen ?? body.length, 68);
  return Buffer.concat([header, body]);
}

/** A client socket that speaks bytes, for exact-byte tests of the daemon. */
export class RawConnection {
  readonly socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#waiter?.();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#closed = true;
      this.#waiter?.();
    });
  }

  static connect(path: string, t?: Teardown): Promise<RawConnection> {
    return new Promise((resolveConnect, reject) => {
      const socket = net.createConnection({ path });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        const connection = new RawConnection(socket);
        t?.teardown(() => socket.destroy());
        resolveConnect(connection);
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** bytes received and not yet consumed */
  get buffered(): number {
    return this.#buffer.length;
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((r, reject) => this.socket.write(bytes, (error) => (error ? reject(error) : r())));
  }

  send(type: number, path: string | Buffer, payload: string | Buffer = "", dataLen?: number): Promise<void> {
    return this.write(rawFrame(type, path, payload, dataLen));
  }

  async #waitFor(bytes: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buffer.length < bytes) {
      if (this.#closed) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.#waiter = () => {
          clearTimeout(timer);
          r();
        };
      });
      this.#waiter = undefined;
    }
    return true;
  }

  /** The next whole message; throws when none arrives within `timeoutMs` or the socket closed. */
  async read(timeoutMs = 5000): Promise<RawFrame> {
    if (!(await this.#waitFor(72, timeoutMs))) {
      throw new Error(`no reply header (${this.#buffer.length} bytes buffered, closed=${this.#closed})`);
    }
    const header = Buffer.from(this.#buffer.subarray(0, 72));
    const dataLen = header.readUInt32LE(68);
    if (!(await this.#waitFor(72 + dataLen, timeoutMs))) throw new Error("no reply payload");
    const payload = this.#buffer.subarray(72, 72 + dataLen).toString("latin1");
    this.#buffer = this.#buffer.subarray(72 + dataLen);
    const end = header.indexOf(0, 1);
    const path = header.toString("latin1", 1, end === -1 || end > 65 ? 65 : end);
    return { type: header[0]!, path, dataLen, payload, header };
  }

  /** Reads `count` messages as `[type, path, payload]` triples (compact for tables). */
  async readMany(count: number): Promise<Array<[number, string, string]>> {
    const result: Array<[number, string, string]> = [];
    for (let i = 0; i < count; i++) {
      const frame = await this.read();
      result.push([frame.type, frame.path, frame.payload]);
    }
    return result;
  }

  /** Reads messages up to and including an end marker (empty path). */
  async readUntilEnd(): Promise<Array<[number, string, string]>> {
    const result: Array<[number, string, string]> = [];
    for (;;) {
      const frame = await this.read();
      result.push([frame.type, frame.path, frame.payload]);
      if (frame.path === "") return result;
    }
  }

  /** True when nothing at all arrives within `ms`. */
  async silentFor(ms: number): Promise<boolean> {
    return !(await this.#waitFor(this.#buffer.length + 1, ms));
  }

  /** Resolves true once the daemon closed the connection (false after `timeoutMs`). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.#waitFor(Number.MAX_SAFE_INTEGER, timeoutMs);
    return this.#closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

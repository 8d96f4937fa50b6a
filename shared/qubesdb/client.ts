/**
 * The QubesDB client (`QubesDbClient` of types.ts) over one unix socket.
 *
 * Requests are pipelined: each is written as one buffer (header + payload,
 * spec §11) and replies are matched to requests in FIFO order, which the
 * daemon guarantees. RESP_WATCH frames can arrive between any two replies
 * (§6.4); they are split out into an event queue that `events()` drains in
 * arrival order (not the reference library's LIFO, §11). With `reconnect`,
 * a lost connection is re-established with back-off, watches are
 * re-registered, and `events()` yields `""` once; requests made while the
 * connection is down fail at once with `QubesDbDisconnectedError`.
 */
import type net from "node:net";
import { encodeMessage, type Frame, FrameDecoder, MAX_DATA_LENGTH, MessageType } from "./codec.js";
import {
  QubesDbDisconnectedError,
  QubesDbInvalidInputError,
  QubesDbNotFoundError,
  QubesDbProtocolError,
  QubesDbRefusedError,
} from "./errors.js";
import { explainBadKey, explainBadPath } from "./path-rules.js";
import { connectSocket, type ResolvedSocket, resolveSocketPath } from "./socket.js";
import type { QubesDbClient, QubesDbConnectOptions } from "./types.js";

/** The reference's QDB_MAX_DATA; the daemon never sends more than it accepts (3071). */
const MAX_REPLY_DATA = 3072;
const RECONNECT_FIRST_DELAY_MS = 50;
const RECONNECT_MAX_DELAY_MS = 2000;

interface Pending {
  /** consumes one reply frame; returns true when the request is complete */
  onFrame(frame: Frame): boolean;
  fail(error: Error): void;
}

type State = "connected" | "reconnecting" | "closed";

export class QubesDbSocketClient implements QubesDbClient {
  #socket: net.Socket | undefined;
  #decoder = this.#newDecoder();
  #state: State = "connected";
  readonly #pending: Pending[] = [];
  #pendingHead = 0;
  /** registered watch strings, one entry per registration (re-registered after a reconnect) */
  readonly #watches: string[] = [];
  readonly #events: string[] = [];
  #eventsHead = 0;
  #waiters: Array<() => void> = [];
  #uncorkScheduled = false;
  #closed: Promise<void> | undefined;

  constructor(
    socket: net.Socket,
    private readonly target: ResolvedSocket,
    private readonly reconnect: boolean,
  ) {
    this.#attach(socket);
  }

  /** The socket path actually connected (the RW one, or its `.ro.sock` fallback). */
  connectedPath: string | undefined;

  async read(key: string): Promise<Buffer> {
    checkKey("read", key, explainBadPathWithSlash);
    return this.#request(MessageType.CMD_READ, key, undefined, (frame) => {
      if (frame.type === MessageType.RESP_READ) return frame.payload ?? Buffer.alloc(0);
      if (frame.type === MessageType.RESP_ERROR_NOENT) throw new QubesDbNotFoundError(key);
      throw unexpected("read", key, frame);
    });
  }

  async readText(key: string): Promise<string | undefined> {
    try {
      return (await this.read(key)).toString("utf8");
    } catch (error) {
      if (error instanceof QubesDbNotFoundError) return undefined;
      throw error;
    }
  }

  async write(key: string, value: string | Buffer): Promise<void> {
    checkKey("write", key, explainBadKey);
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    if (bytes.length > MAX_DATA_LENGTH) {
      throw new QubesDbInvalidInputError(
        `Cannot write "${key}": value is ${bytes.length} bytes, at most ${MAX_DATA_LENGTH} are allowed`,
      );
    }
    if (bytes.indexOf(0) !== -1) {
      throw new QubesDbInvalidInputError(`Cannot write "${key}": value contains a NUL byte`);
    }
    await this.#request(MessageType.CMD_WRITE, key, bytes, (frame) => {
      if (frame.type !== MessageType.RESP_OK) throw unexpected("write", key, frame);
    });
  }

  async rm(key: string): Promise<boolean> {
    checkKey("remove", key, explainBadPathWithSlash);
    return this.#request(MessageType.CMD_RM, key, undefined, (frame) => {
      if (frame.type === MessageType.RESP_OK) return true;
      if (frame.type === MessageType.RESP_ERROR_NOENT) return false;
      throw unexpected("remove", key, frame);
    });
  }

  async multiread(prefix: string): Promise<Map<string, Buffer>> {
    checkKey("multiread", prefix, explainBadPath);
    const entries = await this.#collect(MessageType.CMD_MULTIREAD, MessageType.RESP_MULTIREAD, prefix);
    // The daemon sends the whole database (empty prefix) in descending order (§5.3).
    if (prefix === "") entries.reverse();
    return new Map(entries);
  }

  async list(prefix: string): Promise<string[]> {
    checkKey("list", prefix, explainBadPath);
    const entries = await this.#collect(MessageType.CMD_LIST, MessageType.RESP_LIST, prefix);
    return entries.map(([key]) => key);
  }

  async watch(path: string): Promise<void> {
    checkKey("watch", path, explainBadPathWithSlash);
    await this.#request(MessageType.CMD_WATCH, path, undefined, (frame) => {
      if (frame.type !== MessageType.RESP_OK) throw unexpected("watch", path, frame);
      this.#watches.push(path);
    });
  }

  async unwatch(path: string): Promise<boolean> {
    checkKey("unwatch", path, explainBadPathWithSlash);
    return this.#request(MessageType.CMD_UNWATCH, path, undefined, (frame) => {
      if (frame.type === MessageType.RESP_ERROR_NOENT) return false;
      if (frame.type !== MessageType.RESP_OK) throw unexpected("unwatch", path, frame);
      const index = this.#watches.indexOf(path);
      if (index !== -1) this.#watches.splice(index, 1);
      return true;
    });
  }

  async *events(): AsyncGenerator<string, void, undefined> {
    for (;;) {
      if (this.#eventsHead < this.#events.length) {
        const event = this.#events[this.#eventsHead++]!;
        if (this.#eventsHead > 1024 && this.#eventsHead * 2 > this.#events.length) {
          this.#events.splice(0, this.#eventsHead);
          this.#eventsHead = 0;
        }
        yield event;
      } else if (this.#state === "closed") {
        return;
      } else {
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    }
  }

  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#state = "closed";
    const socket = this.#socket;
    this.#closed = new Promise<void>((resolve) => {
      if (socket === undefined || socket.destroyed) resolve();
      else socket.once("close", () => resolve()).destroy();
    });
    this.#failAll(new QubesDbDisconnectedError(`Cannot finish request: the QubesDB client was closed`));
    this.#wakeEvents();
    return this.#closed;
  }

  /** Sends one request whose reply is one frame; `interpret` maps the frame or throws. */
  #request<T>(
    type: number,
    path: string,
    payload: Buffer | undefined,
    interpret: (frame: Frame) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        onFrame: (frame) => {
          try {
            resolve(interpret(frame));
          } catch (error) {
            reject(error);
          }
          return true;
        },
        fail: reject,
      };
      this.#enqueue(encodeMessage(type, path, payload), pending);
    });
  }

  /** MULTIREAD/LIST: entries until the end marker (a reply frame with an empty path). */
  #collect(type: number, replyType: number, prefix: string): Promise<Array<[string, Buffer]>> {
    const what = type === MessageType.CMD_LIST ? "list" : "multiread";
    return new Promise((resolve, reject) => {
      const entries: Array<[string, Buffer]> = [];
      const pending: Pending = {
        onFrame: (frame) => {
          if (frame.type !== replyType) {
            reject(unexpected(what, prefix, frame));
            return true;
          }
          if (frame.path === "") {
            resolve(entries);
            return true;
          }
          entries.push([frame.path, frame.payload ?? Buffer.alloc(0)]);
          return false;
        },
        fail: reject,
      };
      this.#enqueue(encodeMessage(type, prefix), pending);
    });
  }

  #enqueue(message: Buffer, pending: Pending): void {
    if (this.#state === "closed") {
      pending.fail(new QubesDbDisconnectedError(`Cannot send request: the QubesDB connection is closed`));
    } else if (this.#state === "reconnecting") {
      // Fail fast rather than hang: the caller retries, and the "" event says when we are back.
      pending.fail(
        new QubesDbDisconnectedError(`Cannot send request: reconnecting to QubesDB "${this.target.path}"`),
      );
    } else {
      this.#transmit(message, pending);
    }
  }

  #transmit(message: Buffer, pending: Pending): void {
    const socket = this.#socket!;
    this.#pending.push(pending);
    // Requests made in the same tick leave in one writev (pipelining).
    if (!this.#uncorkScheduled) {
      this.#uncorkScheduled = true;
      socket.cork();
      process.nextTick(() => {
        this.#uncorkScheduled = false;
        socket.uncork();
      });
    }
    socket.write(message);
  }

  #newDecoder(): FrameDecoder {
    return new FrameDecoder((_type, _path, dataLen) => dataLen <= MAX_REPLY_DATA);
  }

  #attach(socket: net.Socket): void {
    this.#socket = socket;
    this.#decoder = this.#newDecoder();
    const decoder = this.#decoder;
    socket.on("data", (chunk: Buffer) => decoder.push(chunk, (frame) => this.#receive(socket, frame)));
    socket.on("error", () => {});
    socket.on("close", () => this.#lost(socket));
  }

  #receive(socket: net.Socket, frame: Frame): boolean {
    if (socket !== this.#socket) return false;
    if (frame.type === MessageType.RESP_WATCH) {
      this.#pushEvent(frame.path);
      return true;
    }
    const pending = this.#pending[this.#pendingHead];
    if (pending === undefined || (frame.dataLen > 0 && frame.payload === undefined)) {
      this.#protocolFailure(
        socket,
        `Cannot decode QubesDB reply: unexpected type ${frame.type} for "${frame.path}"`,
      );
      return false;
    }
    if (pending.onFrame(frame)) {
      this.#pending[this.#pendingHead++] = undefined as unknown as Pending;
      if (this.#pendingHead === this.#pending.length) {
        this.#pending.length = 0;
        this.#pendingHead = 0;
      }
    }
    return true;
  }

  #protocolFailure(socket: net.Socket, message: string): void {
    const error = new QubesDbProtocolError(message);
    this.#failAll(error);
    socket.destroy();
  }

  #pushEvent(path: string): void {
    this.#events.push(path);
    this.#wakeEvents();
  }

  #wakeEvents(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #failAll(error: Error): void {
    const pending = this.#pending.slice(this.#pendingHead);
    this.#pending.length = 0;
    this.#pendingHead = 0;
    for (const p of pending) p.fail(error);
  }

  #lost(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    if (this.#state === "closed") return;
    const error = new QubesDbDisconnectedError(
      `Cannot finish request: QubesDB "${this.connectedPath}" closed the connection`,
    );
    this.#failAll(error);
    if (!this.reconnect) {
      this.#state = "closed";
      this.#wakeEvents();
      return;
    }
    this.#state = "reconnecting";
    void this.#reconnectLoop();
  }

  async #reconnectLoop(): Promise<void> {
    let delay = RECONNECT_FIRST_DELAY_MS;
    while (this.#state === "reconnecting") {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#state !== "reconnecting") return;
      try {
        const { socket, path } = await connectSocket(this.target);
        if (this.#state !== "reconnecting") {
          socket.destroy();
          return;
        }
        this.connectedPath = path;
        this.#attach(socket);
        this.#state = "connected";
        // 1. watches first, so nothing the caller re-reads after the "" event can change unseen
        const watches = this.#watches.splice(0);
        for (const watch of watches) {
          this.#transmit(encodeMessage(MessageType.CMD_WATCH, watch), {
            onFrame: (frame) => {
              if (frame.type === MessageType.RESP_OK) this.#watches.push(watch);
              return true;
            },
            fail: () => {},
          });
        }
        // 2. tell the consumer that events may have been missed
        this.#pushEvent("");
        return;
      } catch {
        delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
      }
    }
  }
}

function explainBadPathWithSlash(path: string): string | undefined {
  if (!path.startsWith("/")) return 'does not start with "/"';
  return explainBadPath(path);
}

function checkKey(action: string, key: string, explain: (key: string) => string | undefined): void {
  const why = explain(key);
  if (why !== undefined) throw new QubesDbInvalidInputError(`Cannot ${action} "${key}": ${why}`);
}

function unexpected(action: string, key: string, frame: Frame): Error {
  if (frame.type === MessageType.RESP_ERROR) {
    return new QubesDbRefusedError(`Cannot ${action} "${key}": the daemon refused (RESP_ERROR)`);
  }
  return new QubesDbProtocolError(`Cannot ${action} "${key}": unexpected reply type ${frame.type}`);
}

/** Connects to the daemon chosen by `options` (see socket.ts); rejects with `QubesDbDisconnectedError`. */
export async function connectQubesDb(
  options: QubesDbConnectOptions = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<QubesDbSocketClient> {
  const target = resolveSocketPath(options, env);
  const { socket, path } = await connectSocket(target);
  const client = new QubesDbSocketClient(socket, target, options.reconnect ?? true);
  client.connectedPath = path;
  return client;
}

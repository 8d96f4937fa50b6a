/**
 * The QubesDB daemon (spec §4–§6): one in-memory database served on a
 * read-write unix socket and optionally a read-only one.
 *
 * Better than the reference, on purpose:
 * - every connection has its own input buffer, so a client that stalls in
 *   the middle of a message never blocks anybody else (§4);
 * - writes never block: each client has an output queue, and a client whose
 *   queue passes `maxQueuedBytes` (it stopped reading) is dropped (§6.4);
 *   while a client's queue is above a lower mark its requests are not read;
 * - no limit on the number of clients (the reference asserts at 256);
 * - undefined reply bytes are zero (§8), READ with a payload gets ERROR (§5.1).
 */
import type net from "node:net";
import { createLogger, type Logger } from "../log.js";
import {
  encodeInto,
  encodeMessage,
  type Frame,
  FrameDecoder,
  HEADER_SIZE,
  MAX_DATA_LENGTH,
  MessageType,
} from "./codec.js";
import { listenUnix, type UnixListener } from "./listen.js";
import { isAcceptedPath, isStorableKey, watchMatches } from "./path-rules.js";
import { Store } from "./store.js";

/** A client above this many queued output bytes is dropped (it is not reading). */
export const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Above this many queued bytes we stop reading a client's requests until its queue drains. */
const PAUSE_QUEUED_BYTES = 256 * 1024;

export interface QubesDbDaemonOptions {
  /** read-write socket path */
  socket: string;
  /** read-only socket path (READ, LIST, MULTIREAD, WATCH, UNWATCH only) */
  roSocket?: string;
  logger?: Logger;
  maxQueuedBytes?: number;
}

interface Connection {
  readonly socket: net.Socket;
  readonly readOnly: boolean;
  readonly decoder: FrameDecoder;
  readonly id: number;
  closing: boolean;
  /** reading stopped because the output queue is long */
  paused: boolean;
  /** queued reply bytes allowed on top of the event limit until the next drain */
  replySlack: number;
  /** the daemon batch in which this client was last written to */
  batch: number;
}

interface WatchRegistration {
  readonly connection: Connection;
  readonly path: string;
}

export class QubesDbDaemon {
  readonly store = new Store();
  readonly #logger: Logger;
  readonly #maxQueuedBytes: number;
  readonly #connections = new Set<Connection>();
  /** in registration order; events walk it newest first (§6.4) */
  #watches: WatchRegistration[] = [];
  readonly #corked: net.Socket[] = [];
  /** incremented per input chunk handled; see #send */
  #batch = 0;
  #listeners: UnixListener[] = [];
  #nextId = 1;

  private constructor(options: QubesDbDaemonOptions) {
    this.#logger = options.logger ?? createLogger();
    this.#maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  }

  /** Creates the daemon and listens; resolves once both sockets accept connections. */
  static async start(options: QubesDbDaemonOptions): Promise<QubesDbDaemon> {
    const daemon = new QubesDbDaemon(options);
    try {
      daemon.#listeners.push(await listenUnix(options.socket, (s) => daemon.#accept(s, false)));
      if (options.roSocket !== undefined) {
        daemon.#listeners.push(await listenUnix(options.roSocket, (s) => daemon.#accept(s, true)));
      }
    } catch (error) {
      await daemon.close();
      throw error;
    }
    return daemon;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Stops listening, drops every client and removes the socket files that are still ours. */
  async close(): Promise<void> {
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const connection of this.#connections) connection.socket.destroy();
    await Promise.all(listeners.map((listener) => listener.close()));
  }

  #accept(socket: net.Socket, readOnly: boolean): void {
    const connection: Connection = {
      socket,
      readOnly,
      id: this.#nextId++,
      closing: false,
      paused: false,
      replySlack: 0,
      batch: -1,
      // Payloads are buffered only for headers that pass the check (§4); others are skipped unbuffered.
      decoder: new FrameDecoder((type, path, dataLen) => checkHeader(type, path, dataLen)),
    };
    this.#connections.add(connection);
    socket.on("data", (chunk: Buffer) => this.#receive(connection, chunk));
    socket.on("drain", () => this.#drained(connection));
    socket.on("error", (error) =>
      this.#logger.debug("client error", { id: connection.id, error: error.message }),
    );
    socket.on("close", () => this.#forget(connection));
  }

  #forget(connection: Connection): void {
    connection.closing = true;
    if (!this.#connections.delete(connection)) return;
    if (this.#watches.some((w) => w.connection === connection)) {
      this.#watches = this.#watches.filter((w) => w.connection !== connection);
    }
  }

  #receive(connection: Connection, chunk: Buffer): void {
    if (connection.closing) return;
    const socket = connection.socket;
    this.#batch++;
    connection.decoder.push(chunk, (frame) => {
      if (!this.#handle(connection, frame)) return false;
      // A client that does not read its replies: stop reading its requests until its queue drains.
      if (socket.writableLength > PAUSE_QUEUED_BYTES) {
        connection.paused = true;
        socket.pause();
        return false;
      }
      return true;
    });
    // Flush everything this batch produced: one writev per client instead of one syscall per message.
    for (const corked of this.#corked) corked.uncork();
    this.#corked.length = 0;
  }

  #drained(connection: Connection): void {
    connection.replySlack = 0;
    if (!connection.paused || connection.closing) return;
    connection.paused = false;
    connection.socket.resume();
    this.#receive(connection, EMPTY);
  }

  /** Queues `message`; a client whose queue of events passes the limit is dropped. */
  #send(connection: Connection, message: Buffer, isEvent = false): void {
    if (connection.closing) return;
    const socket = connection.socket;
    // The first message of a batch goes out at once (one event per watcher is the common
    // fan-out case); further ones are corked and leave together in one writev.
    if (connection.batch !== this.#batch) {
      connection.batch = this.#batch;
    } else if (socket.writableCorked === 0) {
      socket.cork();
      this.#corked.push(socket);
    }
    socket.write(message);
    if (!isEvent) {
      // A big reply (MULTIREAD of a large database) is legitimate; only events count against the limit.
      connection.replySlack = Math.max(connection.replySlack, socket.writableLength);
    } else if (socket.writableLength > this.#maxQueuedBytes + connection.replySlack) {
      this.#logger.warn("dropping client that does not read", {
        id: connection.id,
        queued: socket.writableLength,
      });
      connection.closing = true;
      socket.destroy();
    }
  }

  #reply(connection: Connection, type: number, path: string): void {
    this.#send(connection, encodeMessage(type, path));
  }

  /** Handles one message; returns false when the connection is being closed. */
  #handle(connection: Connection, frame: Frame): boolean {
    const { type, path, dataLen, payload } = frame;
    if (connection.closing) return false;
    if (!checkHeader(type, path, dataLen)) {
      this.#reply(connection, MessageType.RESP_ERROR, path);
      return true;
    }
    switch (type) {
      case MessageType.CMD_READ: {
        // The reference disconnects without a reply here; spec §13 leaves that free, and ERROR is kinder.
        if (dataLen > 0) return this.#error(connection, path);
        const value = this.store.get(path);
        if (value === undefined) this.#reply(connection, MessageType.RESP_ERROR_NOENT, path);
        else this.#send(connection, encodeMessage(MessageType.RESP_READ, path, value));
        return true;
      }
      case MessageType.CMD_WRITE:
        return this.#write(connection, path, payload);
      case MessageType.CMD_MULTIREAD:
      case MessageType.CMD_LIST:
        if (dataLen > 0) return this.#error(connection, path);
        this.#send(
          connection,
          type === MessageType.CMD_LIST ? this.#encodeList(path) : this.#encodeMultiread(path),
        );
        return true;
      case MessageType.CMD_RM:
        return this.#rm(connection, path, dataLen);
      case MessageType.CMD_WATCH:
        // The reference leaves a WATCH payload in the stream (§5.6); we consume it and refuse.
        if (dataLen > 0) return this.#error(connection, path);
        this.#watches.push({ connection, path });
        this.#reply(connection, MessageType.RESP_OK, path);
        return true;
      default:
        return this.#unwatch(connection, path, dataLen);
    }
  }

  #error(connection: Connection, path: string): boolean {
    this.#reply(connection, MessageType.RESP_ERROR, path);
    return true;
  }

  /** §5.2, steps in order. */
  #write(connection: Connection, path: string, payload: Buffer | undefined): boolean {
    if (connection.readOnly) return this.#error(connection, path);
    const value = payload ?? EMPTY;
    if (value.indexOf(0) !== -1) return this.#error(connection, path);
    if (!isStorableKey(path)) {
      // Step 3: ERROR, then the reference closes the connection; clients rely on nothing else.
      this.#reply(connection, MessageType.RESP_ERROR, path);
      connection.closing = true;
      connection.socket.destroySoon(); // flush the ERROR, then close both directions
      return false;
    }
    this.store.set(path, value);
    this.#reply(connection, MessageType.RESP_OK, path);
    this.#fire(path);
    return true;
  }

  /** §5.5 */
  #rm(connection: Connection, path: string, dataLen: number): boolean {
    if (connection.readOnly || dataLen > 0) return this.#error(connection, path);
    const removed = path.endsWith("/") ? this.store.deletePrefix(path) > 0 : this.store.delete(path);
    if (!removed) {
      this.#reply(connection, MessageType.RESP_ERROR_NOENT, path);
      return true;
    }
    this.#reply(connection, MessageType.RESP_OK, path);
    this.#fire(path);
    return true;
  }

  /** §5.7: removes one registration of this connection with exactly this string. */
  #unwatch(connection: Connection, path: string, dataLen: number): boolean {
    if (dataLen > 0) return this.#error(connection, path);
    for (let i = this.#watches.length - 1; i >= 0; i--) {
      const watch = this.#watches[i]!;
      if (watch.connection === connection && watch.path === path) {
        this.#watches.splice(i, 1);
        this.#reply(connection, MessageType.RESP_OK, path);
        return true;
      }
    }
    this.#reply(connection, MessageType.RESP_ERROR_NOENT, path);
    return true;
  }

  /** One event per matching registration, newest registration first (§6.4); one shared buffer. */
  #fire(changedPath: string): void {
    let event: Buffer | undefined;
    for (let i = this.#watches.length - 1; i >= 0; i--) {
      const watch = this.#watches[i]!;
      if (!watchMatches(watch.path, changedPath)) continue;
      event ??= encodeMessage(MessageType.RESP_WATCH, changedPath);
      this.#send(watch.connection, event, true);
    }
  }

  /** §5.3: ascending for a non-empty prefix, the whole database descending for the empty one. */
  #encodeMultiread(prefix: string): Buffer {
    const entries = this.store.entries(prefix);
    if (prefix === "") entries.reverse();
    let size = HEADER_SIZE;
    for (const [, value] of entries) size += HEADER_SIZE + value.length;
    const reply = Buffer.allocUnsafe(size);
    let offset = 0;
    for (const [key, value] of entries)
      offset = encodeInto(reply, offset, MessageType.RESP_MULTIREAD, key, value);
    encodeInto(reply, offset, MessageType.RESP_MULTIREAD, "");
    return reply;
  }

  /** §5.4: always ascending. */
  #encodeList(prefix: string): Buffer {
    const keys = this.store.keys(prefix);
    const reply = Buffer.allocUnsafe(HEADER_SIZE * (keys.length + 1));
    let offset = 0;
    for (const key of keys) offset = encodeInto(reply, offset, MessageType.RESP_LIST, key);
    encodeInto(reply, offset, MessageType.RESP_LIST, "");
    return reply;
  }
}

const EMPTY = Buffer.alloc(0);

/** §4, in order: type 0–6, path characters, data_len < 3072. */
function checkHeader(type: number, path: string, dataLen: number): boolean {
  return type <= MessageType.CMD_UNWATCH && isAcceptedPath(path) && dataLen <= MAX_DATA_LENGTH;
}

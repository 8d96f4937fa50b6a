/**
 * Positional reads and ordered writes with reused buffers: the only I/O the
 * tar writer does on its hot path. Reads go through `fs.read` (pread in
 * libuv's thread pool), so several can be in flight while JavaScript scans
 * the previous chunk; writes hand a buffer to a Writable and get it back when
 * the stream's write callback says the bytes have left it.
 */
import { read, write } from "node:fs";
import type { Writable } from "node:stream";
import { SystemError } from "../../shared/errors.js";

function readOnce(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, position, (error, bytesRead) =>
      error ? reject(error) : resolve(bytesRead),
    );
  });
}

/** Reads exactly `length` bytes at `position` into `buf`; a short input is an error naming `what`. */
export async function readExactly(
  fd: number,
  buf: Buffer,
  length: number,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await readOnce(fd, buf, done, length - done, position + done);
    if (n === 0) {
      throw new SystemError(
        `Cannot read "${what}" at byte ${position + done}: the input ended early (did it shrink while being archived?)`,
      );
    }
    done += n;
  }
}

/** A fixed set of buffers handed out and returned; `acquire` waits while all are in use. */
export class BufferPool {
  readonly #free: Buffer[];
  readonly #waiting: Array<(buf: Buffer) => void> = [];

  constructor(count: number, size: number) {
    // allocUnsafeSlow: unpooled, so byteOffset is 0 and the memory is ours alone.
    this.#free = Array.from({ length: count }, () => Buffer.allocUnsafeSlow(size));
  }

  acquire(): Promise<Buffer> {
    const buf = this.#free.pop();
    if (buf !== undefined) return Promise.resolve(buf);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(buf: Buffer): void {
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) waiter(buf);
    else this.#free.push(buf);
  }
}

/**
 * Writes to a Writable in order, remembering the first error: stream errors
 * surface at the next `check()` or `drain()` instead of crashing the process.
 */
export class OrderedWriter {
  readonly #output: Writable;
  #pending = 0;
  #error: Error | undefined;
  #idle: Array<() => void> = [];

  constructor(output: Writable) {
    this.#output = output;
    output.on("error", (error: Error) => this.#fail(error));
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#wake();
  }

  #wake(): void {
    if (this.#pending !== 0 && this.#error === undefined) return;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Throws the first write error, if any. */
  check(): void {
    if (this.#error !== undefined) throw new SystemError("Cannot write the archive", { cause: this.#error });
  }

  /** Queues `chunk`; `done` runs once the stream no longer needs it (then the buffer may be reused). */
  write(chunk: Buffer, done?: () => void): void {
    this.check();
    this.#pending++;
    this.#output.write(chunk, (error) => {
      this.#pending--;
      if (error) this.#fail(error);
      done?.();
      this.#wake();
    });
  }

  /** Waits until every queued chunk has been taken by the stream. */
  async drain(): Promise<void> {
    if (this.#pending !== 0 && this.#error === undefined) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
    this.check();
  }
}

function writeOnce(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, buf, offset, length, position, (error, written) => (error ? reject(error) : resolve(written)));
  });
}

/** Writes all of `buf[start, end)` at `position` of `fd` (pwrite, so several may be in flight). */
export async function writeAt(
  fd: number,
  buf: Buffer,
  start: number,
  end: number,
  position: number,
): Promise<void> {
  let done = start;
  try {
    while (done < end) done += await writeOnce(fd, buf, done, end - done, position + done - start);
  } catch (error) {
    throw new SystemError(`Cannot write the archive at byte ${position + done - start}`, { cause: error });
  }
}

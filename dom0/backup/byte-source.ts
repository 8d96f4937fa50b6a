/**
 * Exact-length reads from a stream of chunks (a Readable is one): the tar
 * reader asks for "the next 512 bytes" or "the next N bytes, piece by piece"
 * and a stream that ends first is a truncated archive.
 */
export class TruncatedError extends Error {
  override name = "TruncatedError";
}

export class ByteSource {
  readonly #chunks: AsyncIterator<Buffer>;
  #head: Buffer = Buffer.alloc(0);
  #offset = 0;
  #ended = false;

  constructor(chunks: AsyncIterable<Buffer>) {
    this.#chunks = chunks[Symbol.asyncIterator]();
  }

  /** Bytes consumed so far: the archive offset of the next byte. */
  get offset(): number {
    return this.#offset;
  }

  async #fill(): Promise<boolean> {
    while (this.#head.length === 0) {
      if (this.#ended) return false;
      const next = await this.#chunks.next();
      if (next.done === true) {
        this.#ended = true;
        return false;
      }
      this.#head = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    }
    return true;
  }

  /** Up to `max` bytes (at least 1), or undefined at the end of the stream. The result may be a view. */
  async readSome(max: number): Promise<Buffer | undefined> {
    if (!(await this.#fill())) return undefined;
    const piece = this.#head.subarray(0, max);
    this.#head = this.#head.subarray(piece.length);
    this.#offset += piece.length;
    return piece;
  }

  /** Exactly `length` bytes (copied), or TruncatedError naming `what`. Returns undefined only at a clean end. */
  async readExactly(length: number, what: string): Promise<Buffer | undefined> {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const piece = await this.readSome(length - done);
      if (piece === undefined) {
        if (done === 0) return undefined;
        throw new TruncatedError(`the archive ends inside ${what}`);
      }
      piece.copy(out, done);
      done += piece.length;
    }
    return out;
  }

  /** Streams exactly `length` bytes to `sink` piece by piece; a short stream is TruncatedError naming `what`. */
  async pipe(length: number, what: string, sink: (piece: Buffer) => void | Promise<void>): Promise<void> {
    let left = length;
    while (left > 0) {
      const piece = await this.readSome(left);
      if (piece === undefined) throw new TruncatedError(`the archive ends inside ${what}`);
      await sink(piece);
      left -= piece.length;
    }
  }
}

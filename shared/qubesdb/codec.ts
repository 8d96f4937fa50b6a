/**
 * QubesDB wire format (spec §2–§3): a 72-byte header `<B64s3xI` (type, NUL-padded
 * path, 3 padding bytes, little-endian data_len) followed by `data_len` payload
 * bytes. Paths are handled as latin1 strings so that one byte is one character
 * and JavaScript string order equals the reference's `strcmp` order (§7).
 */

/** Header size: 1 + 64 + 3 (C struct padding) + 4. */
export const HEADER_SIZE = 72;
/** Size of the path field; byte 63 is always forced to NUL by the daemon (§2.2). */
export const PATH_FIELD_SIZE = 64;
/** Longest path that fits: 63 characters plus the NUL. */
export const MAX_PATH_LENGTH = 63;
/** Largest payload the daemon accepts: `data_len` must be < 3072 (§2.2, §4 step 3). */
export const MAX_DATA_LENGTH = 3071;

const TYPE_OFFSET = 0;
const PATH_OFFSET = 1;
const DATA_LEN_OFFSET = 68;

/** Message types, numbered as in the reference `qubesdb.h` (§3). */
export const MessageType = {
  CMD_READ: 0,
  CMD_WRITE: 1,
  CMD_MULTIREAD: 2,
  CMD_LIST: 3,
  CMD_RM: 4,
  CMD_WATCH: 5,
  CMD_UNWATCH: 6,
  RESP_OK: 7,
  RESP_ERROR_NOENT: 8,
  RESP_ERROR: 9,
  RESP_READ: 10,
  RESP_MULTIREAD: 11,
  RESP_LIST: 12,
  RESP_WATCH: 13,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** One decoded message. `payload` is undefined when the decoder was told to skip it. */
export interface Frame {
  type: number;
  /** path up to the first NUL, with byte 63 forced to NUL, as latin1 text */
  path: string;
  dataLen: number;
  payload: Buffer | undefined;
}

/** Writes one message at `offset` of `target` (header zeroed except the defined fields); returns the new offset. */
export function encodeInto(
  target: Buffer,
  offset: number,
  type: number,
  path: string,
  payload?: Uint8Array,
): number {
  const dataLen = payload === undefined ? 0 : payload.length;
  target.fill(0, offset, offset + HEADER_SIZE);
  target[offset + TYPE_OFFSET] = type;
  target.write(path, offset + PATH_OFFSET, Math.min(path.length, MAX_PATH_LENGTH), "latin1");
  target.writeUInt32LE(dataLen, offset + DATA_LEN_OFFSET);
  if (payload !== undefined && dataLen > 0) target.set(payload, offset + HEADER_SIZE);
  return offset + HEADER_SIZE + dataLen;
}

/** One message as ONE buffer (header + payload), so it goes out in a single write (§11). */
export function encodeMessage(type: number, path: string, payload?: Uint8Array): Buffer {
  const buffer = Buffer.allocUnsafe(HEADER_SIZE + (payload === undefined ? 0 : payload.length));
  encodeInto(buffer, 0, type, path, payload);
  return buffer;
}

/** Size of an encoded message with this payload length. */
export function messageSize(dataLen: number): number {
  return HEADER_SIZE + dataLen;
}

/**
 * Incremental decoder: feed it whatever the socket delivers (split or coalesced
 * messages) and it calls `onFrame` once per complete message, in order.
 * `keepPayload` decides per header whether the payload is buffered or skipped
 * without buffering (the daemon discards payloads of bad headers, which may
 * announce up to 4 GiB, §4).
 */
export class FrameDecoder {
  #pending: Buffer | undefined;
  #header: Buffer = Buffer.alloc(HEADER_SIZE);
  #current: Frame | undefined;
  #payloadFill = 0;
  #skipRemaining = 0;

  constructor(private readonly keepPayload: (type: number, path: string, dataLen: number) => boolean) {}

  /** Bytes held for an incomplete message (for tests and diagnostics). */
  get bufferedBytes(): number {
    return this.#pending?.length ?? 0;
  }

  /**
   * Consumes `chunk`. When `onFrame` returns `false` decoding stops and the
   * unread rest is kept; `push(Buffer.alloc(0), ...)` later resumes it.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => boolean): void {
    let data = chunk;
    if (this.#pending !== undefined) {
      data = chunk.length === 0 ? this.#pending : Buffer.concat([this.#pending, chunk]);
      this.#pending = undefined;
    }
    let offset = 0;
    while (offset < data.length) {
      const frame = this.#current;
      if (frame === undefined) {
        if (data.length - offset < HEADER_SIZE) break;
        const started = this.#startFrame(data, offset);
        offset += HEADER_SIZE;
        if (started.dataLen > 0) continue;
        if (!onFrame(started)) break;
        continue;
      }
      if (this.#skipRemaining > 0) {
        const take = Math.min(this.#skipRemaining, data.length - offset);
        this.#skipRemaining -= take;
        offset += take;
      } else if (frame.payload !== undefined) {
        const take = Math.min(frame.dataLen - this.#payloadFill, data.length - offset);
        data.copy(frame.payload, this.#payloadFill, offset, offset + take);
        this.#payloadFill += take;
        offset += take;
      }
      if (this.#skipRemaining === 0 && (frame.payload === undefined || this.#payloadFill === frame.dataLen)) {
        this.#current = undefined;
        if (!onFrame(frame)) break;
      }
    }
    if (offset < data.length) this.#pending = Buffer.from(data.subarray(offset));
  }

  #startFrame(data: Buffer, offset: number): Frame {
    const header = this.#header;
    data.copy(header, 0, offset, offset + HEADER_SIZE);
    header[PATH_OFFSET + MAX_PATH_LENGTH] = 0;
    const type = header[TYPE_OFFSET]!;
    const dataLen = header.readUInt32LE(DATA_LEN_OFFSET);
    let end = PATH_OFFSET;
    while (header[end] !== 0) end++;
    const path = header.toString("latin1", PATH_OFFSET, end);
    const keep = dataLen > 0 && this.keepPayload(type, path, dataLen);
    // Unpooled: the daemon stores payloads as values, and a pooled slice would pin an 8 KiB slab each.
    const payload = keep ? Buffer.allocUnsafeSlow(dataLen) : undefined;
    const frame: Frame = { type, path, dataLen, payload };
    if (dataLen > 0) {
      this.#current = frame;
      this.#payloadFill = 0;
      this.#skipRemaining = keep ? 0 : dataLen;
    }
    return frame;
  }
}

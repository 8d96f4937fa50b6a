import t from "tap";
import { encodeMessage, type Frame, FrameDecoder, MessageType } from "../../../shared/qubesdb/codec.js";

t.test("encodeMessage lays out <B64s3xI + payload in one buffer, zeros elsewhere", async (t) => {
  const message = encodeMessage(MessageType.RESP_READ, "/a/b", Buffer.from("xyz"));
  const expected = Buffer.alloc(75);
  expected[0] = 10;
  expected.write("/a/b", 1, "latin1");
  expected.writeUInt32LE(3, 68);
  expected.write("xyz", 72, "latin1");
  t.same(message, expected);
  t.equal(
    encodeMessage(MessageType.CMD_READ, "/x".padEnd(70, "y")).subarray(1, 65).indexOf(0),
    63,
    "path cut to 63, NUL kept",
  );
});

t.test("the decoder handles split, coalesced and skipped messages in order", async (t) => {
  const stream = Buffer.concat([
    encodeMessage(1, "/a", Buffer.from("hello")),
    encodeMessage(0, "/b"),
    encodeMessage(20, "/skip", Buffer.from("x".repeat(500))),
    encodeMessage(2, ""),
  ]);
  const collect = (chunks: Buffer[]) => {
    const frames: Array<[number, string, number, string | undefined]> = [];
    const decoder = new FrameDecoder((type) => type !== 20);
    for (const chunk of chunks) {
      decoder.push(chunk, (f: Frame) => {
        frames.push([f.type, f.path, f.dataLen, f.payload?.toString()]);
        return true;
      });
    }
    return frames;
  };
  const expected = [
    [1, "/a", 5, "hello"],
    [0, "/b", 0, undefined],
    [20, "/skip", 500, undefined],
    [2, "", 0, undefined],
  ];
  t.same(collect([stream]), expected, "one chunk");
  t.same(collect([...stream].map((b) => Buffer.from([b]))), expected, "byte by byte");
  t.same(
    collect([stream.subarray(0, 100), stream.subarray(100, 101), stream.subarray(101)]),
    expected,
    "odd splits",
  );
});

t.test("returning false stops decoding and keeps the rest for later", async (t) => {
  const decoder = new FrameDecoder(() => true);
  const seen: string[] = [];
  const stream = Buffer.concat([encodeMessage(0, "/1"), encodeMessage(0, "/2"), encodeMessage(0, "/3")]);
  decoder.push(stream, (f) => {
    seen.push(f.path);
    return f.path !== "/1";
  });
  t.same(seen, ["/1"]);
  t.equal(decoder.bufferedBytes, 144);
  decoder.push(Buffer.alloc(0), (f) => {
    seen.push(f.path);
    return true;
  });
  t.same(seen, ["/1", "/2", "/3"]);
});

t.test("a 64-byte path without NUL is cut to 63 characters", async (t) => {
  const raw = Buffer.alloc(72);
  raw.fill(0x61, 1, 65);
  const decoder = new FrameDecoder(() => true);
  let path = "";
  decoder.push(raw, (f) => {
    path = f.path;
    return true;
  });
  t.equal(path, "a".repeat(63));
});

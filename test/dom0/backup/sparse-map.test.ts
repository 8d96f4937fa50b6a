import t from "tap";
import { dataSize, formatSparseMap, paddingFor, SparseMapBuilder } from "../../../dom0/backup/sparse-map.js";

const Z = (n: number) => Buffer.alloc(n);
const D = (n: number) => Buffer.alloc(n, 0xab);

/** Feeds `input` in `chunk`-byte pieces; returns the map and the data runs reported per chunk (absolute). */
function build(input: Buffer, chunk: number) {
  const builder = new SparseMapBuilder();
  const runs: Array<[number, number]> = [];
  for (let at = 0; at < input.length; at += chunk) {
    const piece = Buffer.from(input.subarray(at, at + chunk));
    builder.add(piece, piece.length, (start, end) => runs.push([at + start, at + end]));
  }
  return { map: builder.finish(), runs };
}

t.test(
  "the map lists data extents, merges them across chunks and always reaches the real size",
  async (t) => {
    const table: Array<[string, Buffer, number, Array<[number, number]>, Array<[number, number]>]> = [
      ["empty", Z(0), 1024, [[0, 0]], []],
      ["one hole block", Z(512), 1024, [[512, 0]], []],
      [
        "data across a chunk boundary",
        Buffer.concat([Z(512), D(1024), Z(512)]),
        1024,
        [
          [512, 1024],
          [2048, 0],
        ],
        [
          [512, 1024],
          [1024, 1536],
        ],
      ],
      [
        "a zero block inside data",
        Buffer.concat([D(512), Z(512), D(512)]),
        4096,
        [
          [0, 512],
          [1024, 512],
        ],
        [
          [0, 512],
          [1024, 1536],
        ],
      ],
      [
        "a trailing partial block of zeros is data",
        Buffer.concat([Z(512), Z(100)]),
        1024,
        [[512, 100]],
        [[512, 612]],
      ],
      [
        "a block with zeros in its first 8 bytes only",
        Buffer.concat([Z(8), D(504)]),
        512,
        [[0, 512]],
        [[0, 512]],
      ],
      [
        "a block with one non-zero byte at its end",
        Buffer.concat([Z(511), D(1)]),
        512,
        [[0, 512]],
        [[0, 512]],
      ],
    ];
    for (const [label, input, chunk, extents, runs] of table) {
      const built = build(input, chunk);
      t.same(
        built.map,
        { extents: extents.map(([offset, size]) => ({ offset, size })), realSize: input.length },
        label,
      );
      t.same(built.runs, runs, `${label}: runs`);
    }
  },
);

t.test("unaligned buffers give the same map", async (t) => {
  const input = Buffer.concat([D(700), Z(1024), D(300)]);
  const backing = Buffer.alloc(input.length + 1);
  input.copy(backing, 1);
  const builder = new SparseMapBuilder();
  builder.add(backing.subarray(1), input.length);
  t.same(builder.finish().extents, [
    { offset: 0, size: 1024 },
    { offset: 1536, size: 488 },
  ]);
});

t.test("map text, data size and padding", async (t) => {
  const map = {
    extents: [
      { offset: 0, size: 700 },
      { offset: 4096, size: 0 },
    ],
    realSize: 4096,
  };
  t.equal(formatSparseMap(map).toString("latin1").replace(/\0+$/, ""), "2\n0\n700\n4096\n0\n");
  t.equal(dataSize(map), 700);
  t.same([0, 1, 511, 512, 513].map(paddingFor), [0, 511, 1, 0, 511]);
});

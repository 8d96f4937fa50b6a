import { spawnSync } from "node:child_process";
import t from "tap";
import { formatSparseMap } from "../../../dom0/backup/sparse-map.js";
import { formatEntryHeader, formatPaxRecords } from "../../../dom0/backup/tar-header.js";
import { formatSparseEntryStart, sparseEntryName } from "../../../dom0/backup/tar-writer.js";

/**
 * Python's tarfile in PAX_FORMAT is what Qubes' tarwriter uses to write its
 * headers, so it is the oracle: same TarInfo fields, same bytes.
 */
function pythonHeader(name: string, size: number, pax: Array<[string, string]>): Buffer {
  const script = `
import json, sys, tarfile
args = json.loads(sys.argv[1])
info = tarfile.TarInfo(args["name"])
info.size = args["size"]
for k, v in args["pax"]:
    info.pax_headers[k] = v
sys.stdout.buffer.write(info.tobuf(tarfile.PAX_FORMAT))
`;
  const r = spawnSync("python3", ["-c", script, JSON.stringify({ name, size, pax })]);
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

const sparsePax = (name: string, realSize: number): Array<[string, string]> => [
  ["GNU.sparse.major", "1"],
  ["GNU.sparse.minor", "0"],
  ["GNU.sparse.name", name],
  ["GNU.sparse.realsize", String(realSize)],
];

const cases: Array<[string, string, number, Array<[string, string]>]> = [
  ["a small sparse entry", "./GNUSparseFile.0/private.img", 1536, sparsePax("private.img", 2 << 30)],
  ["a plain entry without pax keys", "qubes.xml", 1234, []],
  [
    "an entry of 8 GiB or more (size moves to pax)",
    "vm/GNUSparseFile.0/root.img",
    9 * 2 ** 30,
    sparsePax("vm/root.img", 10 * 2 ** 30),
  ],
  ["an entry exactly at the octal limit", "x", 8 ** 11, []],
  ["an entry just under the octal limit", "x", 8 ** 11 - 1, []],
  [
    "a name longer than 100 bytes (path moves to pax)",
    `${"d".repeat(95)}/GNUSparseFile.0/p.img`,
    512,
    sparsePax(`${"d".repeat(95)}/p.img`, 9),
  ],
  ["a non-ASCII name", "./GNUSparseFile.0/é.img", 512, sparsePax("é.img", 100)],
  ["a pax record whose length gains a digit", "x", 1, [["GNU.sparse.name", "n".repeat(80)]]],
];

for (const [label, name, size, pax] of cases) {
  t.test(`the header of ${label} is byte for byte Python's`, async (t) => {
    const ours = formatEntryHeader({ name, size, mode: 0o644, mtime: 0, pax });
    t.equal(ours.toString("hex"), pythonHeader(name, size, pax).toString("hex"));
  });
}

t.test("pax record lengths count themselves", async (t) => {
  t.equal(formatPaxRecords([["a", "b"]]).toString(), "6 a=b\n");
  t.equal(formatPaxRecords([["k", "v".repeat(93)]]).length, 99);
  t.equal(
    formatPaxRecords([["k", "v".repeat(93)]])
      .toString()
      .slice(0, 3),
    "99 ",
  );
  // 94 values bytes: 98 + 2 digits = 100 needs 3 digits, so the record is 101 bytes.
  t.equal(formatPaxRecords([["k", "v".repeat(94)]]).length, 101);
  t.equal(
    formatPaxRecords([["k", "v".repeat(94)]])
      .toString()
      .slice(0, 4),
    "101 ",
  );
});

t.test("sparse entry names follow GNU tar's DIR/GNUSparseFile.0/BASE", async (t) => {
  const table: Array<[string, string]> = [
    ["private.img", "./GNUSparseFile.0/private.img"],
    ["work/private.img", "work/GNUSparseFile.0/private.img"],
    ["/dev/loop0", "/dev/GNUSparseFile.0/loop0"],
    ["/x", "/GNUSparseFile.0/x"],
  ];
  for (const [name, expected] of table) t.equal(sparseEntryName(name), expected, name);
});

t.test("the sparse map is decimal lines padded to 512 bytes", async (t) => {
  const map = {
    extents: [
      { offset: 0, size: 512 },
      { offset: 4096, size: 0 },
    ],
    realSize: 4096,
  };
  const block = formatSparseMap(map);
  t.equal(block.length, 512);
  t.equal(block.toString("latin1").replace(/\0+$/, ""), "2\n0\n512\n4096\n0\n");
  const start = formatSparseEntryStart("p.img", map);
  t.equal(start.length, 4 * 512, "pax header, its records, the ustar header and the map");
  t.equal(
    start.subarray(0, 3 * 512).toString("hex"),
    pythonHeader("./GNUSparseFile.0/p.img", 1024, sparsePax("p.img", 4096)).toString("hex"),
  );
});

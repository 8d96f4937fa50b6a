import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import t from "tap";
import { ByteSource } from "../../../dom0/backup/byte-source.js";
import { type TarEntry, TarReader } from "../../../dom0/backup/tar-reader.js";
import { formatSparseEntryStart } from "../../../dom0/backup/tar-writer.js";

const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

/** Every entry of an archive, with its contents rebuilt from the extents. */
async function readArchive(
  archive: Buffer,
  chunk = 777,
): Promise<Array<{ entry: TarEntry; content: Buffer }>> {
  const pieces = Array.from({ length: Math.ceil(archive.length / chunk) }, (_, i) =>
    archive.subarray(i * chunk, (i + 1) * chunk),
  );
  const reader = new TarReader(new ByteSource(Readable.from(pieces)));
  const out = [];
  for (let entry = await reader.next(); entry !== undefined; entry = await reader.next()) {
    const content = Buffer.alloc(entry.realSize);
    await reader.readData(entry, (offset, piece) => {
      piece.copy(content, offset);
    });
    out.push({ entry, content });
  }
  return out;
}

/** A file with real holes on disk (GNU tar only stores holes the file system reports). */
function sparseFile(path: string): Buffer {
  const content = Buffer.alloc(3 << 20);
  content.fill(7, 0, 1000);
  content.fill(9, 1 << 20, (1 << 20) + 5000);
  const fd = openSync(path, "w");
  writeSync(fd, content, 0, 1000, 0);
  writeSync(fd, content, 1 << 20, 5000, 1 << 20);
  ftruncateSync(fd, 3 << 20);
  closeSync(fd);
  return content;
}

t.test("archives from GNU tar are read with their real contents", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tar-reader-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const content = sparseFile(join(dir, "s.img"));
  writeFileSync(join(dir, "plain.txt"), "hello\n");
  const table: Array<[string, string[]]> = [
    ["plain ustar", ["--format=ustar"]],
    ["GNU format", ["--format=gnu"]],
    ["pax with sparse 1.0", ["--sparse", "--format=pax"]],
    ["pax with sparse 0.1", ["--sparse", "--format=pax", "--sparse-version=0.1"]],
    ["pax with sparse 0.0", ["--sparse", "--format=pax", "--sparse-version=0.0"]],
  ];
  for (const [label, flags] of table) {
    const archive = join(dir, "a.tar");
    const r = spawnSync("tar", [...flags, "-cf", archive, "-C", dir, "plain.txt", "s.img"]);
    t.equal(r.status, 0, r.stderr.toString());
    const entries = await readArchive(readFileSync(archive));
    t.same(
      entries.map((e) => [e.entry.name, e.entry.realSize]),
      [
        ["plain.txt", 6],
        ["s.img", 3 << 20],
      ],
      label,
    );
    t.equal(entries[0]?.content.toString(), "hello\n", label);
    t.equal(sha256(entries[1]!.content), sha256(content), label);
    t.equal(entries[1]?.entry.sparse, flags.includes("--sparse"), label);
  }
});

/** A one-entry archive of our writer for a file of `realSize` bytes with 1000 data bytes at 0. */
function ourArchive(realSize = 4096): Buffer {
  const map = {
    extents: [
      { offset: 0, size: 1000 },
      { offset: realSize, size: 0 },
    ],
    realSize,
  };
  return Buffer.concat([
    formatSparseEntryStart("vm/private.img", map),
    Buffer.alloc(1000, 1),
    Buffer.alloc(24),
    Buffer.alloc(1024),
  ]);
}

function withMap(archive: Buffer, text: string): Buffer {
  const copy = Buffer.from(archive);
  copy.fill(0, 1536, 2048);
  copy.write(text, 1536, "latin1");
  return copy;
}

t.test("broken archives are errors that say what is wrong", async (t) => {
  const good = ourArchive();
  t.equal(
    (await readArchive(good))[0]?.content.subarray(0, 1000).toString("hex"),
    Buffer.alloc(1000, 1).toString("hex"),
  );
  const badChecksum = Buffer.from(good);
  badChecksum[1024 + 10] = 0x41;
  const table: Array<[string, Buffer, string]> = [
    ["a header with a bad checksum", badChecksum, "Cannot read the header at byte 1024: bad checksum"],
    [
      "an archive cut inside the data",
      good.subarray(0, 2048 + 500),
      'the archive ends inside "vm/private.img"',
    ],
    ["an archive cut inside a header", good.subarray(0, 700), "the archive ends inside the header at byte 0"],
    [
      "an archive without end blocks",
      good.subarray(0, 3072),
      "the archive ends without its end-of-archive blocks",
    ],
    [
      "a map that claims more data than stored",
      withMap(good, "2\n0\n1000\n2000\n24\n"),
      'Cannot restore "vm/private.img": its sparse map describes 1024 bytes of data but the entry stores 1000',
    ],
    [
      "a map past the real size",
      withMap(good, "1\n0\n5000\n"),
      'Cannot restore "vm/private.img": its sparse map has an extent at 0 (+5000) out of order or past the real size 4096',
    ],
    [
      "a map that is not numbers",
      withMap(good, "1\nzero\n1000\n"),
      'Cannot read the sparse map of entry "vm/private.img": "zero" is not a byte count',
    ],
    [
      "a map running into the data",
      withMap(good, "1\n0\n1000"),
      'Cannot read entry "vm/private.img": its sparse map is malformed',
    ],
  ];
  for (const [label, archive, message] of table) {
    await t.rejects(readArchive(archive), { message }, label);
  }
});

t.test("volumes of 8 GiB and more round-trip through the pax size key", async (t) => {
  const realSize = 9 * 2 ** 30;
  const reader = new TarReader(
    new ByteSource(
      Readable.from([
        formatSparseEntryStart("big.img", { extents: [{ offset: realSize - 512, size: 512 }], realSize }),
        Buffer.alloc(512, 3),
        Buffer.alloc(1024),
      ]),
    ),
  );
  const entry = await reader.next();
  t.same(entry?.extents, [{ offset: realSize - 512, size: 512 }]);
  t.equal(entry?.realSize, realSize);
  t.equal(await reader.next(), undefined);
});

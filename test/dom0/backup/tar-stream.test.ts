import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import t from "tap";
import { createTarStream } from "../../../dom0/backup/tar-writer.js";

t.test("one stream holds plain and sparse entries in call order, readable by Python's tarfile", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tar-stream-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = Buffer.concat([Buffer.alloc(2048), Buffer.alloc(100, 5)]);
  writeFileSync(join(dir, "a.img"), a);
  writeFileSync(join(dir, "b.img"), Buffer.alloc(3000, 6));
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (c: Buffer) => chunks.push(c));
  // A tiny chunk size makes every volume span many reads and buffer reuses.
  const tar = createTarStream(out, { chunkSize: 1024 });
  const calls = [
    tar.addFile("qubes.xml", Buffer.from("<qubes/>\n")),
    tar.addVolume("vm/private.img", join(dir, "a.img")),
    tar.addVolume("vm/root.img", join(dir, "b.img")),
  ];
  const maps = await Promise.all(calls);
  await tar.finish();
  t.same(maps.slice(1), [
    { extents: [{ offset: 2048, size: 100 }], realSize: 2148 },
    { extents: [{ offset: 0, size: 3000 }], realSize: 3000 },
  ]);
  const py = spawnSync(
    "python3",
    [
      "-c",
      "import sys,tarfile; t=tarfile.open(fileobj=sys.stdin.buffer, mode='r|'); print([(m.name, m.size) for m in t])",
    ],
    { input: Buffer.concat(chunks) },
  );
  t.equal(py.stdout.toString(), "[('qubes.xml', 9), ('vm/private.img', 2148), ('vm/root.img', 3000)]\n");
});

t.test("an output that fails makes the entry fail with the stream's error", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tar-stream-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "a.img"), Buffer.alloc(1 << 20, 1));
  const broken = new Writable({ write: (_chunk, _enc, cb) => cb(new Error("disk on fire")) });
  const tar = createTarStream(broken, { chunkSize: 4096 });
  await t.rejects(tar.addVolume("a.img", join(dir, "a.img")), { message: "Cannot write the archive" });
});

t.test("a chunk size that is not a multiple of 512 is refused", async (t) => {
  t.throws(() => createTarStream(new PassThrough(), { chunkSize: 1000 }), {
    message: 'Cannot use chunk size "1000": not a positive multiple of 512',
  });
});

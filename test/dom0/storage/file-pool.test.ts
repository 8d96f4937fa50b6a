import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { FilePool } from "../../../dom0/storage/file-pool.js";
import { volumesOf } from "../../../dom0/storage/pool.js";

function fresh(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), "file-pool-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, pool: new FilePool(dir) };
}

t.test("a created volume is a sparse image of the requested size under appvms/VM", async (t) => {
  const { dir, pool } = fresh(t);
  const ref = { vm: "work", volume: "private" } as const;
  await pool.create(ref, 2 * 2 ** 30);
  const path = join(dir, "appvms/work/private.img");
  t.equal(await pool.export(ref), path);
  t.equal(statSync(path).size, 2 * 2 ** 30);
  t.equal(statSync(path).blocks, 0, "no disk space used");
  t.equal(await pool.size(ref), 2 * 2 ** 30);
  t.equal(await pool.exists(ref), true);
});

t.test("resize grows and shrinks the image to exactly the size", async (t) => {
  const { pool } = fresh(t);
  const ref = { vm: "work", volume: "private" } as const;
  await pool.create(ref, 4096);
  for (const size of [10_000_001, 513, 0, 1 << 20]) {
    await pool.resize(ref, size);
    t.equal(await pool.size(ref), size);
  }
});

t.test("an import replaces the image only on commit", async (t) => {
  const { dir, pool } = fresh(t);
  const ref = { vm: "work", volume: "root" } as const;
  await pool.create(ref, 1024);
  const image = join(dir, "appvms/work/root.img");
  writeFileSync(image, Buffer.alloc(1024, 1));
  const aborted = await pool.import(ref);
  t.equal(aborted.path, `${image}.new`);
  writeFileSync(aborted.path, Buffer.alloc(1024, 2));
  await aborted.abort();
  t.same(readFileSync(image), Buffer.alloc(1024, 1), "abort leaves the image untouched");
  t.throws(() => statSync(`${image}.new`));

  const committed = await pool.import(ref);
  t.equal(statSync(committed.path).size, 1024, "the fresh volume has the current size");
  writeFileSync(committed.path, Buffer.alloc(1024, 3));
  t.same(readFileSync(image), Buffer.alloc(1024, 1), "nothing changes before commit");
  await committed.commit();
  t.same(readFileSync(image), Buffer.alloc(1024, 3));
});

t.test("remove deletes the image and a leftover import, and tolerates a missing volume", async (t) => {
  const { dir, pool } = fresh(t);
  const ref = { vm: "work", volume: "volatile" } as const;
  await pool.create(ref, 1);
  await pool.import(ref);
  await pool.remove(ref);
  t.equal(await pool.exists(ref), false);
  t.throws(() => statSync(join(dir, "appvms/work/volatile.img.new")));
  await pool.remove(ref);
});

t.test("errors name the volume", async (t) => {
  const { dir, pool } = fresh(t);
  const table: Array<[string, () => Promise<unknown>, RegExp]> = [
    [
      "size of a missing volume",
      () => pool.size({ vm: "gone", volume: "private" }),
      /^Cannot find volume ".*\/appvms\/gone\/private.img": it does not exist$/,
    ],
    [
      "a path-like VM name",
      () => pool.create({ vm: "../etc", volume: "private" }, 1),
      /^Cannot use VM name "..\/etc": not a valid Qubes VM name$/,
    ],
    [
      "a negative size",
      () => pool.create({ vm: "a", volume: "private" }, -1),
      /^Cannot size volume "a:private" to "-1": not a byte count$/,
    ],
    [
      "creating twice",
      async () => {
        await pool.create({ vm: "b", volume: "private" }, 1);
        await pool.create({ vm: "b", volume: "private" }, 1);
      },
      new RegExp(`^Cannot create volume "${dir}/appvms/b/private.img"$`),
    ],
  ];
  for (const [label, action, message] of table) {
    await t.rejects(action(), { message }, label);
  }
});

t.test("only templates and standalones own a root volume", async (t) => {
  t.same(volumesOf("AppVM"), ["private", "volatile"]);
  t.same(volumesOf("DispVM"), ["private", "volatile"]);
  t.same(volumesOf("TemplateVM"), ["private", "root", "volatile"]);
  t.same(volumesOf("StandaloneVM"), ["private", "root", "volatile"]);
});

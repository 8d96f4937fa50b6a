import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { readCollection } from "../../../dom0/model/collection.js";
import { setFeature } from "../../../dom0/model/edit.js";
import { acquireLock } from "../../../dom0/store/lock.js";
import { readStore, withStore } from "../../../dom0/store/store.js";

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "dom0-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test("a missing qubes.xml reads as a fresh collection and is created by the first change", async (t) => {
  const dir = tempDir(t);
  t.same([...readCollection(await readStore(dir)).vms.keys()], ["dom0"]);
  await withStore(dir, (doc) => {
    setFeature(doc, "dom0", "x", "1");
  });
  t.match(readFileSync(join(dir, "qubes.xml"), "utf8"), /<feature name="x">1<\/feature>/);
  t.same(readdirSync(dir).sort(), ["qubes.xml"], "no temporary or lock file is left behind");
});

t.test("concurrent changes never lose an update", async (t) => {
  const dir = tempDir(t);
  await Promise.all(
    Array.from({ length: 25 }, (_, i) =>
      withStore(dir, async (doc) => {
        // Yield between load and save so that changes would interleave without the lock.
        await new Promise((resolve) => setTimeout(resolve, 1));
        setFeature(doc, "dom0", `f${i}`, String(i));
      }),
    ),
  );
  const features = readCollection(await readStore(dir)).vms.get("dom0")!.features;
  t.equal(features.size, 25);
});

t.test("a change that throws leaves the file untouched", async (t) => {
  const dir = tempDir(t);
  await withStore(dir, (doc) => {
    setFeature(doc, "dom0", "x", "1");
  });
  const before = readFileSync(join(dir, "qubes.xml"), "utf8");
  await t.rejects(
    withStore(dir, (doc) => {
      setFeature(doc, "dom0", "y", "2");
      throw new Error("refused");
    }),
    { message: "refused" },
  );
  t.equal(readFileSync(join(dir, "qubes.xml"), "utf8"), before);
  t.same(readdirSync(dir).sort(), ["qubes.xml"]);
});

t.test("a save keeps the mode of the file it replaces", async (t) => {
  const dir = tempDir(t);
  await withStore(dir, (doc) => {
    setFeature(doc, "dom0", "x", "1");
  });
  chmodSync(join(dir, "qubes.xml"), 0o660);
  await withStore(dir, (doc) => {
    setFeature(doc, "dom0", "x", "2");
  });
  t.equal(statSync(join(dir, "qubes.xml")).mode & 0o777, 0o660);
});

t.test("a lock left by a process that no longer exists is taken over", async (t) => {
  const dir = tempDir(t);
  const dead = spawnSync(process.execPath, [
    "-e",
    "process.stdout.write(String(process.pid))",
  ]).stdout.toString();
  writeFileSync(join(dir, "qubes.xml.lock"), `${dead}\n`);
  const release = await acquireLock(join(dir, "qubes.xml.lock"), { timeoutMs: 1000 });
  t.equal(readFileSync(join(dir, "qubes.xml.lock"), "utf8"), `${process.pid}\n`);
  await release();
  t.same(readdirSync(dir), []);
});

t.test("a lock held by a live process is waited for, then reported with its pid", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "qubes.xml.lock");
  writeFileSync(path, "1\n");
  await t.rejects(acquireLock(path, { timeoutMs: 50 }), {
    message: `Cannot lock "${path}": held by process 1`,
  });
});

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { formatEntryHeader } from "../../../dom0/backup/tar-header.js";
import { formatSparseEntryStart } from "../../../dom0/backup/tar-writer.js";

const BACKUP = "dist/dom0/cli/qvm-backup.js";
const RESTORE = "dist/dom0/cli/qvm-backup-restore.js";
const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");
const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

function domain(qid: number, name: string, vmClass: string, extra = ""): string {
  return `    <domain id="domain-${qid}" class="${vmClass}">
      <properties>
        <property name="qid">${qid}</property>
        <property name="name">${name}</property>
        <property name="uuid">00000000-0000-4000-8000-00000000000${qid}</property>
        <property name="label">label-1</property>${extra}
      </properties>
      <features/>
      <tags/>
    </domain>`;
}

function qubesXml(domains: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<qubes>
  <labels>
    <label color="0xcc0000" id="label-1">red</label>
  </labels>
  <pools/>
  <properties/>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties>
        <property name="label">label-1</property>
      </properties>
      <features/>
      <tags/>
    </domain>
${domains.join("\n")}
  </domains>
</qubes>
`;
}

/** Writes a sparse image: `pieces` of data at their offsets, holes elsewhere. */
function writeImage(path: string, size: number, pieces: Array<[number, Buffer]>): Buffer {
  mkdirSync(join(path, ".."), { recursive: true });
  const fd = openSync(path, "w");
  ftruncateSync(fd, size);
  const content = Buffer.alloc(size);
  for (const [offset, data] of pieces) {
    writeSync(fd, data, 0, data.length, offset);
    data.copy(content, offset);
  }
  closeSync(fd);
  return content;
}

const random = (n: number, seed: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 255) + 1));

/** A source store with a template and an AppVM, volumes of odd sizes, and a firewall. */
function sourceStore(t: { teardown(fn: () => void): void }) {
  const root = mkdtempSync(join(tmpdir(), "restore-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const src = join(root, "src");
  mkdirSync(src);
  writeFileSync(
    join(src, "qubes.xml"),
    qubesXml([
      domain(1, "tpl", "TemplateVM"),
      domain(2, "work", "AppVM", '\n        <property name="template">tpl</property>'),
    ]),
  );
  const images = {
    "work/private.img": writeImage(join(src, "appvms/work/private.img"), 3 * 2 ** 20 + 100, [
      [0, random(5000, 1)],
      [2 ** 20, random(700, 2)],
      [3 * 2 ** 20 + 50, random(50, 3)],
    ]),
    "tpl/private.img": writeImage(join(src, "appvms/tpl/private.img"), 2 ** 20, []),
    "tpl/root.img": writeImage(join(src, "appvms/tpl/root.img"), 5 * 2 ** 20, [
      [2 ** 20, random(2 ** 20, 4)],
    ]),
  };
  writeFileSync(join(src, "appvms/work/firewall.xml"), '<firewall version="2"><rules/></firewall>\n');
  const archive = join(root, "backup.tar");
  return { root, src, images, archive };
}

t.test("a backup restores every volume at exactly its size, holes kept, into a fresh store", async (t) => {
  const { root, src, images, archive } = sourceStore(t);
  const backedUp = run("node", [BACKUP, "--qubes-dir", src, archive]);
  t.equal(backedUp.status, 0, backedUp.stderr);
  t.equal(backedUp.stderr, `Backed up tpl, work to ${archive}\n`);
  t.same(run("tar", ["-tf", archive]).stdout.split("\n").filter(Boolean), [
    "qubes.xml",
    "tpl/private.img",
    "tpl/root.img",
    "work/firewall.xml",
    "work/private.img",
  ]);
  const dst = join(root, "dst");
  const restored = run("node", [RESTORE, "--qubes-dir", dst, archive]);
  t.equal(restored.status, 0, restored.stderr);
  t.equal(restored.stdout, "Restored tpl private=1048576 root=5242880\nRestored work private=3145828\n");
  for (const [name, content] of Object.entries(images)) {
    const path = join(dst, "appvms", name);
    t.equal(statSync(path).size, content.length, `${name} has the backed-up size, not the default`);
    t.equal(sha256(readFileSync(path)), sha256(content), name);
  }
  t.ok(statSync(join(dst, "appvms/work/private.img")).blocks * 512 < 64 * 1024, "holes stay holes");
  t.equal(
    statSync(join(dst, "appvms/work/volatile.img")).size,
    10 * 2 ** 30,
    "volatile is a fresh default volume",
  );
  t.equal(
    readFileSync(join(dst, "appvms/work/firewall.xml"), "utf8"),
    '<firewall version="2"><rules/></firewall>\n',
  );
  const xml = readFileSync(join(dst, "qubes.xml"), "utf8");
  t.match(xml, /<property name="name">work<\/property>/);
  t.match(xml, /<property name="template">tpl<\/property>/);
});

t.test("a conflicting name is refused, or renamed with --rename-conflicting", async (t) => {
  const { root, src, archive } = sourceStore(t);
  t.equal(run("node", [BACKUP, "--qubes-dir", src, archive, "work", "tpl"]).status, 0);
  const dst = join(root, "dst");
  t.equal(run("node", [RESTORE, "--qubes-dir", dst, archive, "tpl"]).status, 0);
  const refused = run("node", [RESTORE, "--qubes-dir", dst, archive]);
  t.equal(refused.status, 1);
  t.equal(
    refused.stderr,
    'qvm-backup-restore: Cannot restore the backup at entry "qubes.xml": Cannot restore "tpl": a qube with this name exists (use --rename-conflicting)\n',
  );
  const renamed = run("node", [RESTORE, "--rename-conflicting", "--qubes-dir", dst, archive]);
  t.equal(renamed.status, 0, renamed.stderr);
  t.equal(
    renamed.stdout,
    "Restored tpl as tpl1 private=1048576 root=5242880\nRestored work private=3145828\n",
  );
  t.match(readFileSync(join(dst, "qubes.xml"), "utf8"), /<property name="template">tpl1<\/property>/);
});

t.test("--verify-only reads everything and changes nothing", async (t) => {
  const { root, src, archive } = sourceStore(t);
  t.equal(
    run("node", [BACKUP, "--compress-program", "zstd -q", "--exclude", "tpl", "--qubes-dir", src, archive])
      .status,
    0,
  );
  const dst = join(root, "dst");
  const verified = run("node", [RESTORE, "--verify-only", "--qubes-dir", dst, archive]);
  t.equal(verified.status, 0, verified.stderr);
  t.equal(verified.stdout, "Verified work private=3145828\n");
  t.equal(existsSync(dst), false);
});

/** A hand-made backup with one AppVM `big` whose private volume has `realSize` bytes. */
function handMade(realSize: number, tail?: (archive: Buffer) => Buffer): Buffer {
  const xml = Buffer.from(qubesXml([domain(5, "big", "AppVM")]));
  const map = { extents: [{ offset: realSize - 1000, size: 1000 }], realSize };
  const archive = Buffer.concat([
    formatEntryHeader({ name: "qubes.xml", size: xml.length, mode: 0o644, mtime: 0, pax: [] }),
    xml,
    Buffer.alloc((512 - (xml.length % 512)) % 512),
    formatSparseEntryStart("big/private.img", map),
    random(1000, 9),
    Buffer.alloc(24),
    Buffer.alloc(1024),
  ]);
  return tail ? tail(archive) : archive;
}

t.test("volumes larger and smaller than the default are resized to the size in the header", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "restore-size-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const realSize of [2 * 2 ** 30 + 2 ** 20 + 7, 4096 + 3]) {
    const dst = join(root, `dst-${realSize}`);
    const archive = join(root, `${realSize}.tar`);
    writeFileSync(archive, handMade(realSize));
    const r = run("node", [RESTORE, "--qubes-dir", dst, archive]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, `Restored big private=${realSize}\n`);
    const image = join(dst, "appvms/big/private.img");
    t.equal(statSync(image).size, realSize);
    const fd = openSync(image, "r");
    const tail = Buffer.alloc(1000);
    readSync(fd, tail, 0, 1000, realSize - 1000);
    closeSync(fd);
    t.equal(sha256(tail), sha256(random(1000, 9)));
  }
});

t.test("a broken backup names the entry, removes the partial VM and leaves existing VMs alone", async (t) => {
  const { root, src, archive } = sourceStore(t);
  t.equal(run("node", [BACKUP, "--qubes-dir", src, archive]).status, 0);
  const good = readFileSync(archive);
  const cases: Array<[string, Buffer, string]> = [
    [
      "a truncated archive",
      good.subarray(0, good.length - 3000),
      'Cannot restore the backup at entry "work/private.img": the archive ends inside "work/private.img"',
    ],
    [
      "an oversized volume",
      handMade(2 ** 45),
      'Cannot restore the backup at entry "big/private.img": Cannot restore "big/private.img": its size 35184372088832 exceeds the limit 17592186044416',
    ],
    [
      "a missing volume",
      handMade(4096, (a) => Buffer.concat([a.subarray(0, a.indexOf("././@PaxHeader")), Buffer.alloc(1024)])),
      'Cannot restore the backup at entry "the archive": Cannot restore "big": the archive has no "big/private.img"',
    ],
  ];
  for (const [label, broken, message] of cases) {
    const dst = join(root, `dst-${label.replace(/\W/g, "")}`);
    mkdirSync(dst);
    writeFileSync(
      join(dst, "qubes.xml"),
      qubesXml([domain(1, "keep", "AppVM", '\n        <property name="template">x</property>')]),
    );
    const keepImage = writeImage(join(dst, "appvms/keep/private.img"), 8192, [[0, random(100, 5)]]);
    const path = join(root, "broken.tar");
    writeFileSync(path, broken);
    const r = run("node", [RESTORE, "--qubes-dir", dst, path]);
    t.equal(r.status, 1, label);
    t.equal(r.stderr, `qvm-backup-restore: ${message}\n`, label);
    const xml = readFileSync(join(dst, "qubes.xml"), "utf8");
    t.notMatch(xml, /name">(work|big)</, `${label}: the partial VM is gone from qubes.xml`);
    t.equal(existsSync(join(dst, "appvms/work/private.img")), false, `${label}: its volumes are gone`);
    t.equal(existsSync(join(dst, "appvms/big/private.img")), false, `${label}: its volumes are gone`);
    t.match(xml, /name">keep</, `${label}: the existing VM stays`);
    t.equal(sha256(readFileSync(join(dst, "appvms/keep/private.img"))), sha256(keepImage));
  }
});

t.test("a backup made by GNU tar --sparse --format=pax restores", async (t) => {
  const { root, src, images } = sourceStore(t);
  const archive = join(root, "gnu.tar");
  const r = run("tar", [
    "--sparse",
    "--format=pax",
    "-cf",
    archive,
    "-C",
    src,
    "qubes.xml",
    "--transform",
    "s,^appvms/,,",
    "appvms/tpl/private.img",
    "appvms/tpl/root.img",
    "appvms/work/private.img",
  ]);
  t.equal(r.status, 0, r.stderr);
  const dst = join(root, "dst");
  const restored = run("node", [RESTORE, "--qubes-dir", dst, archive]);
  t.equal(restored.status, 0, restored.stderr);
  for (const [name, content] of Object.entries(images)) {
    t.equal(sha256(readFileSync(join(dst, "appvms", name))), sha256(content), name);
  }
});

const notRoot = process.getuid?.() !== 0 ? "needs root to mount a small tmpfs" : false;

t.test("a full disk fails the restore naming the entry and removes the VM", { skip: notRoot }, async (t) => {
  const { root, src, archive } = sourceStore(t);
  t.equal(run("node", [BACKUP, "--qubes-dir", src, archive, "tpl"]).status, 0);
  const dst = join(root, "small");
  mkdirSync(dst);
  t.equal(run("mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", dst]).status, 0);
  t.teardown(() => {
    run("umount", [dst]);
  });
  const r = run("node", [RESTORE, "--qubes-dir", dst, archive]);
  t.equal(r.status, 1);
  t.match(r.stderr, /^qvm-backup-restore: Cannot restore the backup at entry "tpl\/root.img": .*ENOSPC/);
  t.notMatch(readFileSync(join(dst, "qubes.xml"), "utf8"), /name">tpl</);
  t.equal(existsSync(join(dst, "appvms/tpl/root.img")), false);
});

t.test("verify-only of a broken backup fails and changes nothing", async (t) => {
  const { root, src, archive } = sourceStore(t);
  t.equal(run("node", [BACKUP, "--qubes-dir", src, archive]).status, 0);
  const broken = join(root, "broken.tar");
  writeFileSync(broken, readFileSync(archive).subarray(0, 5000));
  const dst = join(root, "dst");
  const r = run("node", [RESTORE, "--verify-only", "--qubes-dir", dst, broken]);
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    /^qvm-backup-restore: Cannot restore the backup at entry "tpl\/private.img": the archive ends inside/,
  );
  t.equal(existsSync(dst), false);
});

t.test("a backup that fails to decompress names the decompressor", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "restore-zstd-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const path = join(root, "bad.tar.zst");
  writeFileSync(path, Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100, 7)]));
  const r = run("node", [RESTORE, "--qubes-dir", join(root, "dst"), path]);
  t.equal(r.status, 1);
  t.match(r.stderr, new RegExp(`^qvm-backup-restore: Cannot decompress "${path}" with zstd: exit code 1: `));
});

t.test("qvm-backup fails with the exit code of a failing compress program", async (t) => {
  const { root, src } = sourceStore(t);
  const r = run("node", [BACKUP, "--compress-program", "exit 9", "--qubes-dir", src, join(root, "b.tar")]);
  t.equal(r.status, 9);
  t.equal(r.stderr, 'qvm-backup: Cannot compress the archive with "exit 9": it exited with code 9\n');
});

t.test("qvm-backup refuses unknown qubes and dom0", async (t) => {
  const { root, src } = sourceStore(t);
  const table: Array<[string[], string]> = [
    [["nope"], 'qvm-backup: Cannot back up "nope": no such qube\n'],
    [["dom0"], 'qvm-backup: Cannot back up "dom0": the AdminVM has no volumes here\n'],
    [
      ["--exclude", "work", "--exclude", "tpl"],
      "qvm-backup: Cannot back up nothing: every qube was excluded\n",
    ],
  ];
  for (const [args, stderr] of table) {
    const r = run("node", [BACKUP, "--qubes-dir", src, join(root, "b.tar"), ...args]);
    t.equal(r.status, 1, args.join(" "));
    t.equal(r.stderr, stderr, args.join(" "));
  }
});

t.test(
  "an AppVM whose template is neither restored nor present is refused before anything changes",
  async (t) => {
    const { root, src, archive } = sourceStore(t);
    t.equal(run("node", [BACKUP, "--qubes-dir", src, archive, "work"]).status, 0);
    const dst = join(root, "dst");
    const refused = run("node", [RESTORE, "--qubes-dir", dst, archive]);
    t.equal(refused.status, 1);
    t.equal(
      refused.stderr,
      'qvm-backup-restore: Cannot restore the backup at entry "qubes.xml": Cannot restore "work": its template "tpl" is neither in this restore nor on this system (restore it too)\n',
    );
    t.equal(existsSync(join(dst, "appvms/work")), false);
    t.equal(
      run("node", [RESTORE, "--verify-only", "--qubes-dir", dst, archive]).status,
      0,
      "verify-only does not care",
    );
  },
);

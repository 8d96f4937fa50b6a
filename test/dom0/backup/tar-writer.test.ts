import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { BLOCK_SIZE, type Extent } from "../../../dom0/backup/sparse-map.js";

const CLI = "dist/dom0/cli/qubes-tarwriter.js";

/** Deterministic non-zero bytes (never a zero block). */
function data(length: number, seed = 1): Buffer {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buf[i] = ((i * 131 + seed * 7) % 251) + 1;
  return buf;
}
const zeros = (length: number) => Buffer.alloc(length);
const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

/** The map the reference computes, written the slow obvious way. */
function expectedMap(input: Buffer): Extent[] {
  const extents: Extent[] = [];
  let start = -1;
  for (let at = 0; at < input.length; at += BLOCK_SIZE) {
    const block = input.subarray(at, at + BLOCK_SIZE);
    const hole = block.length === BLOCK_SIZE && block.every((b) => b === 0);
    if (hole && start >= 0) {
      extents.push({ offset: start, size: at - start });
      start = -1;
    } else if (!hole && start < 0) start = at;
  }
  if (start >= 0) extents.push({ offset: start, size: input.length - start });
  else extents.push({ offset: input.length, size: 0 });
  return extents;
}

const pad = (n: number) => Math.ceil(n / BLOCK_SIZE) * BLOCK_SIZE;

function run(cmd: string, args: string[], input?: Buffer) {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

const PY_READ = `
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
out = []
for m in t.getmembers():
    out.append({"name": m.name, "size": m.size, "pax": m.pax_headers, "sparse": m.sparse, "mode": m.mode, "uid": m.uid, "gid": m.gid, "mtime": m.mtime})
t.extractall(sys.argv[2], filter="data")
print(json.dumps(out))
`;

const cases: Array<[string, Buffer]> = [
  ["an empty input", zeros(0)],
  ["1 byte", data(1)],
  ["1000 bytes", data(1000)],
  ["exactly 512 bytes", data(512)],
  ["8 MiB of zeros", zeros(8 << 20)],
  ["all data across several read chunks", data((3 << 20) + 100)],
  [
    "alternating data and zero blocks",
    Buffer.concat(Array.from({ length: 64 }, (_, i) => (i % 2 ? zeros(512) : data(512, i)))),
  ],
  ["a hole at the start", Buffer.concat([zeros(1 << 20), data(5000)])],
  ["a hole at the end", Buffer.concat([data(5000), zeros(1 << 20)])],
  [
    "a hole at both ends and data across a chunk boundary",
    Buffer.concat([zeros((1 << 20) - 1024), data(4096), zeros(2048)]),
  ],
  ["a size that is not a multiple of 512 ending in zeros", Buffer.concat([data(513), zeros(2000)])],
  ["a trailing partial block of zeros", Buffer.concat([data(1024), zeros(700)])],
];

t.test("archives round-trip through GNU tar and Python's tarfile", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [label, input] of cases) {
    t.test(`with ${label}`, async (t) => {
      const slug = label.replace(/\W+/g, "-");
      const inputPath = join(dir, `${slug}.img`);
      const archive = join(dir, `${slug}.tar`);
      writeFileSync(inputPath, input);
      const written = run("node", [CLI, "--override-name", "vm/private.img", inputPath, archive]);
      t.equal(written.stderr, "");
      t.equal(written.status, 0);

      const streamed = run("node", [CLI, "--override-name", "vm/private.img", inputPath, "-"]);
      t.equal(
        sha256(streamed.stdout),
        sha256(readFileSync(archive)),
        "file output (single pass) and stdout agree",
      );

      const map = expectedMap(input);
      const mapText = `${[map.length, ...map.flatMap((e) => [e.offset, e.size])].join("\n")}\n`;
      const stored = pad(mapText.length) + map.reduce((n, e) => n + e.size, 0);
      t.equal(
        statSync(archive).size,
        3 * BLOCK_SIZE + pad(stored) + 2 * BLOCK_SIZE,
        "only the data extents are stored",
      );

      const gnuDir = join(dir, `${slug}-gnu`);
      run("mkdir", ["-p", gnuDir]);
      const gnu = run("tar", ["-xf", archive, "-C", gnuDir]);
      t.equal(gnu.stderr, "", "GNU tar does not warn");
      t.equal(gnu.status, 0);
      t.equal(sha256(readFileSync(join(gnuDir, "vm/private.img"))), sha256(input));

      const pyDir = join(dir, `${slug}-py`);
      const py = run("python3", ["-c", PY_READ, archive, pyDir]);
      t.equal(py.status, 0, py.stderr);
      const [member] = JSON.parse(py.stdout.toString());
      t.same(member, {
        name: "vm/private.img",
        size: input.length,
        pax: {
          "GNU.sparse.major": "1",
          "GNU.sparse.minor": "0",
          "GNU.sparse.name": "vm/private.img",
          "GNU.sparse.realsize": String(input.length),
        },
        sparse: map.map((e) => [e.offset, e.size]),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
      });
      t.equal(sha256(readFileSync(join(pyDir, "vm/private.img"))), sha256(input));
    });
  }
});

t.test(
  "the ustar entry is named like GNU tar's sparse files and the pax header lists exactly four keys",
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tarwriter-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const input = join(dir, "in.img");
    writeFileSync(input, Buffer.concat([zeros(1024), data(600)]));
    const out = run("node", [CLI, "--override-name", "a/b.img", input, "-"]);
    t.equal(out.status, 0);
    const archive = out.stdout;
    const records = archive
      .subarray(BLOCK_SIZE, 2 * BLOCK_SIZE)
      .toString("latin1")
      .replace(/\0+$/, "");
    t.equal(
      records,
      "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n" +
        "27 GNU.sparse.name=a/b.img\n28 GNU.sparse.realsize=1624\n",
    );
    t.equal(archive.subarray(0, 14).toString("latin1"), "././@PaxHeader");
    const ustarName = archive
      .subarray(2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 100)
      .toString("latin1")
      .replace(/\0+$/, "");
    t.equal(ustarName, "a/GNUSparseFile.0/b.img");
    t.equal(
      archive
        .subarray(3 * BLOCK_SIZE, 4 * BLOCK_SIZE)
        .toString("latin1")
        .replace(/\0+$/, ""),
      "1\n1024\n600\n",
    );
  },
);

const notRoot = process.getuid?.() !== 0 ? "needs root for losetup" : false;

t.test("a loop block device is archived with the device's size", { skip: notRoot }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-loop-"));
  const image = join(dir, "disk.img");
  const content = Buffer.concat([data(4096), zeros(1 << 20), data(10000, 3), zeros((3 << 20) - 14096)]);
  writeFileSync(image, content);
  const attached = run("losetup", ["-f", "--show", image]);
  t.equal(attached.status, 0, attached.stderr);
  const device = attached.stdout.toString().trim();
  t.teardown(() => {
    if (device !== "") run("losetup", ["-d", device]);
    rmSync(dir, { recursive: true, force: true });
  });
  t.equal(statSync(device).size, 0, "stat says nothing about a block device's size");
  const archive = join(dir, "disk.tar");
  const written = run("node", [CLI, "--override-name", "work/private.img", device, archive]);
  t.equal(written.status, 0, written.stderr);
  const out = join(dir, "out");
  run("mkdir", [out]);
  t.equal(run("tar", ["-xf", archive, "-C", out]).status, 0);
  t.equal(sha256(readFileSync(join(out, "work/private.img"))), sha256(content));
  const listing = run("python3", ["-c", PY_READ, archive, join(dir, "py")]);
  t.same(JSON.parse(listing.stdout.toString())[0].sparse, [
    [0, 4096],
    [4096 + (1 << 20), 10240],
    [4 << 20, 0],
  ]);
});

t.test("a compress program filters the archive", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-zstd-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, "in.img");
  const content = Buffer.concat([data(70000), zeros(1 << 20), data(3)]);
  writeFileSync(input, content);
  const archive = join(dir, "in.tar.zst");
  const written = run("node", [
    CLI,
    "--use-compress-program",
    "zstd -q",
    "--override-name",
    "x.img",
    input,
    archive,
  ]);
  t.equal(written.status, 0, written.stderr);
  const tarBytes = run("zstd", ["-dc", archive]).stdout;
  const plain = run("node", [CLI, "--override-name", "x.img", input, "-"]).stdout;
  t.equal(sha256(tarBytes), sha256(plain), "the decompressed archive is the plain archive");
  const out = join(dir, "out");
  run("mkdir", [out]);
  t.equal(run("tar", ["--use-compress-program", "zstd", "-xf", archive, "-C", out]).status, 0);
  t.equal(sha256(readFileSync(join(out, "x.img"))), sha256(content));
});

t.test("a failing compress program fails the run with its exit code", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-fail-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, "in.img");
  writeFileSync(input, data(3 << 20));
  for (const command of ["cat > /dev/null; exit 7", "exit 5"]) {
    const code = Number(command.slice(-1));
    const r = run("node", [CLI, "--use-compress-program", command, input, join(dir, "out.tar")]);
    t.equal(r.status, code, command);
    t.equal(
      r.stderr,
      `qubes-tarwriter: Cannot compress the archive with "${command}": it exited with code ${code}\n`,
    );
  }
});

t.test("a missing input is an error naming it, whatever the output", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const output of ["-", join(dir, "out.tar")]) {
    const r = run("node", [CLI, "/nonexistent/x.img", output]);
    t.equal(r.status, 1);
    t.match(
      r.stderr,
      /^qubes-tarwriter: Cannot archive "\/nonexistent\/x.img" as "\/nonexistent\/x.img": cannot open it: ENOENT/,
    );
  }
});

t.test("a directory input is refused", async (t) => {
  const r = run("node", [CLI, "/tmp", "-"]);
  t.equal(r.status, 1);
  t.equal(r.stderr, 'qubes-tarwriter: Cannot archive "/tmp": not a regular file or block device\n');
});

t.test("an existing, longer output file is replaced, not overlaid", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "big.img"), data(3 << 20));
  writeFileSync(join(dir, "small.img"), data(100));
  const out = join(dir, "out.tar");
  t.equal(run("node", [CLI, join(dir, "big.img"), out]).status, 0);
  t.equal(run("node", [CLI, join(dir, "small.img"), out]).status, 0);
  t.equal(sha256(readFileSync(out)), sha256(run("node", [CLI, join(dir, "small.img"), "-"]).stdout));
});

t.test("a full output disk is an error saying where the write failed", { skip: notRoot }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tarwriter-full-"));
  const small = join(dir, "small");
  run("mkdir", [small]);
  t.equal(run("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", small]).status, 0);
  t.teardown(() => {
    run("umount", [small]);
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, "in.img"), data(1 << 20));
  for (const output of [join(small, "out.tar"), "-"]) {
    const r =
      output === "-"
        ? spawnSync("sh", ["-c", `node ${CLI} ${join(dir, "in.img")} - > ${join(small, "piped.tar")}`], {
            encoding: "utf8",
          })
        : spawnSync("node", [CLI, join(dir, "in.img"), output], { encoding: "utf8" });
    t.equal(r.status, 1, output);
    t.match(r.stderr, /^qubes-tarwriter: Cannot write the archive.*ENOSPC/, output);
  }
});

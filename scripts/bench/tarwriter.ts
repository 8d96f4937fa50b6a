/**
 * Benchmark of qubes-tarwriter against `cat IMG > out` (the floor: one read
 * and one write of every byte) and GNU `tar --sparse --format=pax`, on a
 * 1 GiB image that is half data / half holes and on a fully random one.
 * Each command runs as a child under `/usr/bin/time` (wall, user+sys CPU,
 * peak RSS), several times; the median run is reported with ratios to cat.
 * The page cache is warmed first and every output is deleted (and synced
 * away) between runs, so runs compare CPU and memory, not the disk.
 *
 *   node dist/scripts/bench/tarwriter.js [--size-mib N] [--runs N]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const MIB = 2 ** 20;
const argv = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = argv.indexOf(name);
  return at >= 0 ? Number(argv[at + 1]) : fallback;
};
const sizeMib = option("--size-mib", 1024);
const runs = option("--runs", 5);
const writer = resolve("dist/dom0/cli/qubes-tarwriter.js");

interface Sample {
  wall: number;
  cpu: number;
  rssMib: number;
}

/** Runs `sh -c command` under /usr/bin/time; returns its wall, CPU and peak RSS. */
function measure(command: string, out: string, dir: string): Sample {
  const timing = join(dir, "time.txt");
  const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", timing, "sh", "-c", command], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error(`Cannot benchmark "${command}": exit code ${r.status}`);
  const [wall, user, sys, rssKib] = readFileSync(timing, "utf8").trim().split(/\s+/).map(Number);
  rmSync(out, { force: true });
  execFileSync("sync");
  return { wall: wall!, cpu: user! + sys!, rssMib: rssKib! / 1024 };
}

function median(samples: Sample[]): Sample {
  return [...samples].sort((a, b) => a.wall - b.wall)[Math.floor(samples.length / 2)]!;
}

/** `half`: 1 MiB of random data, then a 1 MiB hole, repeated; `random`: random bytes throughout. */
function makeImage(path: string, kind: "half" | "random"): void {
  const fd = openSync(path, "w");
  const chunk = Buffer.allocUnsafe(MIB);
  for (let mib = 0; mib < sizeMib; mib++) {
    if (kind === "half" && mib % 2 === 1) continue;
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, MIB, mib * MIB);
  }
  execFileSync("truncate", ["-s", `${sizeMib}M`, path]);
  closeSync(fd);
}

const dir = mkdtempSync(join(tmpdir(), "bench-tarwriter-"));
try {
  console.log(`qubes-tarwriter benchmark: ${sizeMib} MiB images, median of ${runs} runs`);
  console.log(
    "Qubes' reference figures (1 GiB): python tarwriter 0.60 s / 0.88 s, GNU tar 2.07 s / 0.84 s, cat 0.26 s / 0.29 s",
  );
  for (const kind of ["half", "random"] as const) {
    const image = join(dir, `${kind}.img`);
    const out = join(dir, "out");
    makeImage(image, kind);
    execFileSync("sh", ["-c", `cat '${image}' > /dev/null`]);
    const commands: Array<[string, string]> = [
      ["cat", `cat '${image}' > '${out}'`],
      ["qubes-tarwriter", `node '${writer}' '${image}' '${out}'`],
      // stdout takes the two-pass stream path, as pipes and compress programs do.
      ["qubes-tarwriter - > out", `node '${writer}' '${image}' - > '${out}'`],
      ["tar --sparse --format=pax", `tar --sparse --format=pax -cf '${out}' -C '${dir}' '${kind}.img'`],
    ];
    const results = new Map<string, Sample[]>(commands.map(([name]) => [name, []]));
    // Interleaved, so drifting machine load affects every command alike.
    for (let run = 0; run < runs; run++) {
      for (const [name, command] of commands) results.get(name)!.push(measure(command, out, dir));
    }
    const floor = median(results.get("cat")!);
    console.log(`\n${kind === "half" ? "half data, half holes" : "all random"}:`);
    console.log("  command                      wall s   cpu s   peak RSS MiB   wall / cat");
    for (const [name] of commands) {
      const m = median(results.get(name)!);
      console.log(
        `  ${name.padEnd(27)} ${m.wall.toFixed(2).padStart(6)}  ${m.cpu.toFixed(2).padStart(6)}  ${m.rssMib.toFixed(1).padStart(13)}   ${(m.wall / floor.wall).toFixed(2).padStart(9)}`,
      );
    }
    rmSync(image);
  }
  // RSS must not grow with the input: a 4x larger image of holes.
  const holes = join(dir, "holes.img");
  execFileSync("truncate", ["-s", `${4 * sizeMib}M`, holes]);
  const big = median(
    [0, 1, 2].map(() => measure(`node '${writer}' '${holes}' '${join(dir, "out")}'`, join(dir, "out"), dir)),
  );
  console.log(
    `\nqubes-tarwriter on a ${4 * sizeMib} MiB image of holes: wall ${big.wall.toFixed(2)} s, peak RSS ${big.rssMib.toFixed(1)} MiB`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

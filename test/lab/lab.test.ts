/**
 * The lab end to end, through its command line (the built JS): `up` in a
 * unique directory, every probe of `check --json` as its own assertion,
 * `down`, then nothing of the lab may remain on the host.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import t from "tap";
import { findLeftovers } from "../../scripts/lab/probes/leftovers.js";
import { netnsSkipReason } from "../helpers/netns.js";

const CLI = resolve(import.meta.dirname, "../../dist/scripts/lab/cli.js");

/** The probes of issue 7 in order, by the names `check` prints. */
const PROBE_NAMES = [
  "each client sees exactly its visible IP, netmask and gateway",
  "client → server works; upstream sees the native IP; no received byte carries it",
  "clients sharing a fake IP work concurrently, cannot reach each other, and are reachable by native IP",
  "a client sending from a forged source address gets nothing through",
  "firewall: rules bite within a second, reject is admin-prohibited, set replaces, broken rules fail closed for that VM only",
  "changing net.fake-ip on a running client changes what it and upstream see, others undisturbed",
  "agent SIGKILLed mid-traffic: restarted, traffic resumes, the firewall never opens",
  "everything the lab made is recorded, so down removes it all",
];

t.test(
  "a lab comes up, passes every probe and goes down without a trace",
  { skip: netnsSkipReason() },
  async (t) => {
    const dir = join(tmpdir(), `qfl-test-${process.pid}-${randomBytes(3).toString("hex")}`);
    t.teardown(() => execa("node", [CLI, "down", "--dir", dir], { reject: false }));

    const up = await execa("node", [CLI, "up", "--dir", dir, "--clients", "3"], { reject: false });
    t.equal(up.exitCode, 0, `up builds every part:\n${up.stdout}\n${up.stderr}`);
    const state = JSON.parse(readFileSync(join(dir, "lab.json"), "utf8")) as {
      prefix: string;
      dir: string;
      runDir: string;
      vms: Array<{ vif: string }>;
      problems: string[];
    };
    t.same(state.problems, [], "up recorded no problems");
    t.match(state.prefix, /^qfl-[0-9a-f]{6}-$/, "the run has its own prefix");

    const check = await execa("node", [CLI, "check", "--json", "--dir", dir], { reject: false });
    const { probes } = JSON.parse(String(check.stdout)) as {
      probes: Array<{ name: string; ok: boolean; observed: string }>;
    };
    t.same(
      probes.map((p) => p.name),
      PROBE_NAMES,
      "check runs the eight probes in order",
    );
    for (const p of probes) t.ok(p.ok, `${p.name}: ${p.observed}`);
    t.equal(check.exitCode, probes.filter((p) => !p.ok).length, "the exit status counts the failed probes");

    const down = await execa("node", [CLI, "down", "--dir", dir], { reject: false });
    t.equal(down.exitCode, 0, `down succeeds: ${down.stderr}`);
    t.same(
      findLeftovers(state),
      { namespaces: [], processes: [], sockets: [] },
      "no namespace, process or socket remains",
    );
    t.notOk(existsSync(dir), "the lab's directory is gone");

    const again = await execa("node", [CLI, "down", "--dir", dir], { reject: false });
    t.equal(again.exitCode, 0, "down is idempotent");
    t.match(again.stdout, /nothing to remove/);
  },
);

t.test("down removes everything after up was killed half-way", { skip: netnsSkipReason() }, async (t) => {
  const dir = join(tmpdir(), `qfl-test-${process.pid}-${randomBytes(3).toString("hex")}`);
  t.teardown(() => execa("node", [CLI, "down", "--dir", dir], { reject: false }));
  const upRun = execa("node", [CLI, "up", "--dir", dir], { reject: false });
  // Kill it once it has started processes and made namespaces, mid-build.
  const deadline = Date.now() + 60_000;
  let state:
    | {
        prefix: string;
        dir: string;
        runDir: string;
        vms: Array<{ vif: string }>;
        processes: unknown[];
        namespaces: unknown[];
      }
    | undefined;
  while (Date.now() < deadline) {
    try {
      state = JSON.parse(readFileSync(join(dir, "lab.json"), "utf8"));
    } catch {
      state = undefined;
    }
    if (state !== undefined && state.processes.length >= 3 && state.namespaces.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  upRun.kill("SIGKILL");
  await upRun;
  t.ok(state, "up got far enough to have started processes");
  if (state === undefined) return;
  const before = findLeftovers(state);
  t.ok(
    before.namespaces.length > 0 && before.processes.length > 0,
    "the killed up left namespaces and processes",
  );

  const down = await execa("node", [CLI, "down", "--dir", dir], { reject: false });
  t.equal(down.exitCode, 0, `down succeeds: ${down.stderr}`);
  t.same(findLeftovers(state), { namespaces: [], processes: [], sockets: [] }, "nothing remains");
  t.notOk(existsSync(dir), "the lab's directory is gone");
});

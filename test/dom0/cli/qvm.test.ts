/**
 * The dom0 commands as an admin (and the lab) drives them: built JS in dist/
 * (run `npm run build` first), a temporary --qubes-dir, real QubesDB daemons
 * for the running qubes.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { startDaemons } from "../../../scripts/bench/emitter-topology.js";
import { connectQubesDb } from "../../../shared/qubesdb/client.js";

const BIN = "dist/dom0/cli";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function makeRunner(qubesDir: string, runDir: string) {
  return (command: string, args: string[], input?: string): Promise<Result> =>
    new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(BIN, `${command}.js`), "--qubes-dir", qubesDir, ...args],
        { env: { ...process.env, QUBESDB_RUN_DIR: runDir, QUBES_DIR: "" } },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
}

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), `dom0-cli-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const qubesDir = join(dir, "qubes");
  const runDir = join(dir, "run");
  return { qubesDir, runDir, run: makeRunner(qubesDir, runDir) };
}

/** The lab's topology, built with the commands exactly as an admin types them. */
async function buildLab(run: ReturnType<typeof makeRunner>): Promise<void> {
  const steps: string[][] = [
    ["qvm-create", "--class", "TemplateVM", "--label", "black", "debian-12"],
    ["qvm-create", "--class", "AppVM", "--template", "debian-12", "--label", "red", "sys-net"],
    ["qvm-prefs", "sys-net", "provides_network", "True"],
    ["qvm-prefs", "sys-net", "netvm", ""],
    ["qvm-create", "--class", "AppVM", "--template", "debian-12", "--label", "green", "sys-firewall"],
    ["qvm-prefs", "sys-firewall", "provides_network", "True"],
    ["qvm-prefs", "sys-firewall", "netvm", "sys-net"],
    ["qvm-create", "--class", "AppVM", "--template", "debian-12", "--label", "red", "anon-1"],
    ["qvm-prefs", "anon-1", "netvm", "sys-firewall"],
    ["qvm-features", "anon-1", "net.fake-ip", "10.152.152.11"],
    ["qvm-features", "anon-1", "net/fake-gateway", "10.152.152.10"],
  ];
  for (const [command, ...args] of steps) {
    const result = await run(command!, args);
    if (result.code !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr}`);
  }
}

t.test("every command answers --help", async (t) => {
  const { run } = setup(t);
  for (const command of [
    "qvm-create",
    "qvm-remove",
    "qvm-prefs",
    "qvm-features",
    "qvm-firewall",
    "qvm-ls",
    "qubes-fakeip-dom0",
  ]) {
    const result = await run(command, ["--help"]);
    t.equal(result.code, 0, command);
    t.match(result.stdout, new RegExp(`^Usage: ${command} `), command);
  }
});

t.test("an admin's session: create, prefs, features, ls", async (t) => {
  const { run } = setup(t);
  await buildLab(run);
  t.same(await run("qvm-features", ["anon-1"]), {
    code: 0,
    stdout: "net.fake-ip       10.152.152.11\nnet.fake-gateway  10.152.152.10\n",
    stderr: "",
  });
  t.same(await run("qvm-features", ["anon-1", "net/fake-ip"]), {
    code: 0,
    stdout: "10.152.152.11\n",
    stderr: "",
  });
  t.same(await run("qvm-features", ["anon-1", "net.fake-netmask"]), { code: 1, stdout: "", stderr: "" });
  t.same(await run("qvm-prefs", ["anon-1", "visible_gateway"]), {
    code: 0,
    stdout: "10.152.152.10\n",
    stderr: "",
  });
  t.same(await run("qvm-prefs", ["sys-net", "netvm"]), { code: 0, stdout: "\n", stderr: "" });
  const prefs = await run("qvm-prefs", ["sys-firewall"]);
  t.match(prefs.stdout, /^netvm {13}- {2}sys-net$/m);
  t.match(prefs.stdout, /^provides_network {2}- {2}True$/m);
  t.match(prefs.stdout, /^ip {16}D {2}10\.137\.0\.3$/m);
  t.same(await run("qvm-ls", []), {
    code: 0,
    stdout: [
      "NAME          STATE    CLASS       LABEL  TEMPLATE   NETVM         IP          VISIBLE-IP",
      "anon-1        Halted   AppVM       red    debian-12  sys-firewall  10.137.0.4  10.152.152.11",
      "debian-12     Halted   TemplateVM  black  -          -             -           -",
      "dom0          Running  AdminVM     black  -          -             -           -",
      "sys-firewall  Halted   AppVM       green  debian-12  sys-net       10.137.0.3  10.137.0.3",
      "sys-net       Halted   AppVM       red    debian-12  -             10.137.0.2  10.137.0.2",
      "",
    ].join("\n"),
    stderr: "",
  });
  t.same(await run("qvm-features", ["anon-1", "net.fake-ip", "--unset"]), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  t.same(await run("qvm-prefs", ["anon-1", "visible_ip"]), { code: 0, stdout: "10.137.0.4\n", stderr: "" });
  t.same(await run("qvm-prefs", ["anon-1", "netvm", "--default"]), { code: 0, stdout: "", stderr: "" });
  t.same(
    await run("qvm-prefs", ["anon-1", "netvm"]),
    { code: 0, stdout: "\n", stderr: "" },
    "no default_netvm: none",
  );
  t.same(await run("qvm-remove", ["anon-1"]), { code: 0, stdout: "", stderr: "" });
  t.notMatch((await run("qvm-ls", [])).stdout, /anon-1/);
});

t.test(
  "errors name the qube, property or feature and value, exit 1 and leave the store unchanged",
  async (t) => {
    const { run, qubesDir } = setup(t);
    await buildLab(run);
    const before = readFileSync(join(qubesDir, "qubes.xml"), "utf8");
    const cases: Array<[string, string[], string]> = [
      [
        "qvm-features",
        ["anon-1", "net.fake-ip", "10.1.2"],
        'qvm-features: error: Cannot set feature "net.fake-ip" of "anon-1" to "10.1.2": not an IPv4 address\n',
      ],
      [
        "qvm-features",
        ["anon-1", "net.fake-netmask", "255.0.255.0"],
        'qvm-features: error: Cannot set feature "net.fake-netmask" of "anon-1" to "255.0.255.0": the netmask is not contiguous\n',
      ],
      [
        "qvm-prefs",
        ["sys-net", "netvm", "sys-firewall"],
        'qvm-prefs: error: Cannot set property "netvm" of "sys-net" to "sys-firewall": loops in network are unsupported\n',
      ],
      [
        "qvm-prefs",
        ["anon-1", "netvm", "debian-12"],
        'qvm-prefs: error: Cannot set property "netvm" of "anon-1" to "debian-12": the qube "debian-12" does not provide network\n',
      ],
      ["qvm-prefs", ["ghost", "netvm"], 'qvm-prefs: error: Cannot find qube "ghost": no such qube\n'],
      [
        "qvm-create",
        ["--template", "debian-12", "anon-2"],
        'qvm-create: error: Cannot create "anon-2": --label is required\n',
      ],
      [
        "qvm-create",
        ["--label", "red", "--template", "debian-12", "anon-1"],
        'qvm-create: error: Cannot create "anon-1": a qube with this name exists\n',
      ],
      [
        "qvm-remove",
        ["sys-firewall"],
        'qvm-remove: error: Cannot remove "sys-firewall": it is still used by anon-1 (netvm)\n',
      ],
      [
        "qvm-firewall",
        ["anon-1", "add", "action=drop", "dst4=10.0.0.1/33"],
        'qvm-firewall: error: Cannot parse firewall rule "action=drop dst4=10.0.0.1/33": option "dst4": prefix length 33 is out of range 0..32\n',
      ],
      [
        "qvm-firewall",
        ["anon-1", "del", "--rule-no", "5"],
        'qvm-firewall: error: Cannot delete rule number 5 of "anon-1": no such rule\n',
      ],
      [
        "qvm-firewall",
        ["anon-1", "frobnicate"],
        'qvm-firewall: error: Cannot run "frobnicate": use list, add, del, reset or set\n',
      ],
    ];
    for (const [command, args, stderr] of cases) {
      t.same(await run(command, args), { code: 1, stdout: "", stderr }, `${command} ${args.join(" ")}`);
    }
    t.equal(readFileSync(join(qubesDir, "qubes.xml"), "utf8"), before);
  },
);

t.test("qvm-firewall lists, adds, deletes, replaces and resets rules", async (t) => {
  const { run } = setup(t);
  await buildLab(run);
  t.same(await run("qvm-firewall", ["anon-1", "add", "--before", "0", "action=drop", "dst4=192.0.2.0/24"]), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  await run("qvm-firewall", ["anon-1", "add", "drop", "proto=tcp", "dstports=443", "comment=no web"]);
  t.same(
    (await run("qvm-firewall", ["anon-1"])).stdout,
    [
      "NO  ACTION  HOST          PROTOCOL  PORT(S)  SPECIAL TARGET  ICMP TYPE  EXPIRE  COMMENT",
      "0   drop    192.0.2.0/24  -         -        -               -          -       -",
      "1   accept  -             -         -        -               -          -       -",
      "2   drop    -             tcp       443      -               -          -       no web",
      "",
    ].join("\n"),
  );
  await run("qvm-firewall", ["anon-1", "del", "action=accept"]);
  t.same(
    (await run("qvm-firewall", ["anon-1", "list", "--raw"])).stdout,
    "action=drop dst4=192.0.2.0/24\naction=drop proto=tcp dstports=443-443 comment=no web\n",
  );
  const set = await run(
    "qvm-firewall",
    ["anon-1", "set", "--file", "-"],
    "# web only\naction=accept proto=tcp dstports=443\n\naction=drop\n",
  );
  t.equal(set.code, 0, set.stderr);
  t.same(
    (await run("qvm-firewall", ["anon-1", "list", "--raw"])).stdout,
    "action=accept proto=tcp dstports=443-443\naction=drop\n",
  );
  const bad = await run("qvm-firewall", ["anon-1", "set"], "action=accept\naction=maybe\n");
  t.match(bad, {
    code: 1,
    stderr: /Cannot read standard input line 2: Cannot parse firewall rule "action=maybe"/,
  });
  t.same(
    (await run("qvm-firewall", ["anon-1", "list", "--raw"])).stdout,
    "action=accept proto=tcp dstports=443-443\naction=drop\n",
    "a bad set changes nothing",
  );
  await run("qvm-firewall", ["anon-1", "add", "--before", "0", "accept", "dst4=192.0.2.9", "expire=+3600"]);
  const expiring = (await run("qvm-firewall", ["anon-1", "list", "--raw"])).stdout.split("\n")[0] ?? "";
  const at = Number(/expire=(\d+)$/.exec(expiring)?.[1]);
  t.ok(Math.abs(at - (Date.now() / 1000 + 3600)) < 600, `expire=+3600 is relative to now: ${expiring}`);
  await run("qvm-firewall", ["anon-1", "reset"]);
  t.same((await run("qvm-firewall", ["anon-1", "list", "--raw"])).stdout, "action=accept\n");
});

t.test("concurrent qvm-create runs never lose a qube", async (t) => {
  const { run } = setup(t);
  await run("qvm-create", ["--class", "TemplateVM", "--label", "black", "debian-12"]);
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      run("qvm-create", ["--template", "debian-12", "--label", "red", `vm-${i}`]),
    ),
  );
  t.same(
    results.map((r) => r.code),
    [0, 0, 0, 0, 0, 0, 0, 0],
  );
  const ls = (await run("qvm-ls", [])).stdout;
  for (let i = 0; i < 8; i++) t.match(ls, new RegExp(`^vm-${i} `, "m"));
  const qids = [...ls.matchAll(/10\.137\.0\.(\d+)/g)].map((m) => m[1]);
  t.equal(qids.length, 0, "not networked: no IPs");
});

t.test("changes reach running qubes at once, and sync/serve publish everything", async (t) => {
  const { run, runDir, qubesDir } = setup(t);
  await buildLab(run);
  const daemons = await startDaemons(runDir, ["sys-firewall", "sys-net", "anon-1"]);
  t.teardown(() => daemons.stop());
  const db = async (name: string) => {
    const client = await connectQubesDb({ socket: join(runDir, `qubesdb.${name}.sock`), reconnect: false });
    t.teardown(() => client.close());
    return client;
  };
  const [fw, net, anon] = [await db("sys-firewall"), await db("sys-net"), await db("anon-1")];
  t.same(await run("qubes-fakeip-dom0", ["sync"]), {
    code: 0,
    stdout: "published 3 qubes: 45 writes, 0 removes\n",
    stderr: "",
  });
  t.same(await run("qubes-fakeip-dom0", ["sync"]), {
    code: 0,
    stdout: "published 3 qubes: 0 writes, 0 removes\n",
    stderr: "",
  });
  t.equal(await anon.readText("/qubes-ip"), "10.152.152.11");
  t.equal(await fw.readText("/mapped-ip/10.137.0.4/visible-ip"), "10.152.152.11");

  await run("qvm-prefs", ["anon-1", "netvm", "sys-net"]);
  t.same(
    [
      await fw.readText("/connected-ips"),
      await fw.readText("/qubes-firewall/10.137.0.4"),
      await net.readText("/connected-ips"),
    ],
    ["", undefined, "10.137.0.3 10.137.0.4"],
    "the old netvm forgets the qube, the new one knows it",
  );
  t.equal(await net.readText("/mapped-ip/10.137.0.4/visible-gateway"), "10.152.152.10");
  t.equal(await anon.readText("/qubes-gateway"), "10.152.152.10");

  // serve: a change made to qubes.xml on disk by someone else is published.
  const serve = spawn(
    process.execPath,
    [join(BIN, "qubes-fakeip-dom0.js"), "serve", "--qubes-dir", qubesDir],
    {
      env: { ...process.env, QUBESDB_RUN_DIR: runDir },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let log = "";
  serve.stderr.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
  t.teardown(() => serve.kill("SIGKILL"));
  const waitFor = async (check: () => Promise<boolean>, what: string) => {
    // Generous: the suite runs on a loaded 2-core machine; this is a timeout, not a speed target.
    const deadline = Date.now() + 60_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  await waitFor(async () => log.includes("INFO ready"), "ready");
  const path = join(qubesDir, "qubes.xml");
  writeFileSync(path, readFileSync(path, "utf8").replace("10.152.152.11", "10.152.152.12"));
  await waitFor(async () => (await anon.readText("/qubes-ip")) === "10.152.152.12", "the new fake IP");
  t.equal(await net.readText("/mapped-ip/10.137.0.4/visible-ip"), "10.152.152.12");
  serve.kill("SIGTERM");
  t.equal(await exited, 0);
  t.match(log, /INFO stopped/);
});

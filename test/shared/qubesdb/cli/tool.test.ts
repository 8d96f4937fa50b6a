/**
 * The command-line tools (spec §12): options, output encoding, messages and
 * exit codes, run as built (`npm run build` first) against a real daemon.
 */
import { spawn } from "node:child_process";
import { symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { startTestDaemon } from "../../../helpers/qubesdb.js";

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../dist/shared/qubesdb/cli");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  tool: string,
  args: string[],
  env: Record<string, string>,
  whileRunning?: (stdout: () => string) => Promise<void>,
): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [join(CLI, `qubesdb-${tool}.js`), ...args], {
      // without tap's NODE_OPTIONS loaders, which would slow every start-up down
      env: { ...process.env, NODE_OPTIONS: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("latin1");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("latin1");
    });
    let exited = false;
    child.on("close", (code) => {
      exited = true;
      resolveRun({ code, stdout, stderr });
    });
    if (whileRunning !== undefined) {
      void (async () => {
        while (!exited) {
          await whileRunning(() => stdout);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
    }
  });
}

const USAGE_START = "Usage: qubesdb-<read|write|rm|multiread|list|watch>";

t.test("each tool's options, output, messages and exit codes", async (t) => {
  const db = await startTestDaemon(t);
  const env = { QUBESDB_SOCKET: db.socket, QUBESDB_RUN_DIR: db.dir };
  const cases: Array<[string, string, string[], string, string, number]> = [
    // [name, tool, args, stdout, stderr, exit code]
    ["write pairs", "write", ["/a", "1", "/b/c", "x\ty é", "/b/d", ""], "", "", 0],
    ["write an odd number of arguments", "write", ["/a", "1", "/b"], "", "Invalid number of parameters\n", 1],
    ["read one key", "read", ["/a"], "1\n", "", 0],
    ["read escapes bytes outside 0x20-0x7f", "read", ["/b/c"], "x\\x09y \\xc3\\xa9\n", "", 0],
    ["read -r prints the bytes", "read", ["-r", "/b/c"], "x\ty \xc3\xa9\n", "", 0],
    ["read -f prints the path", "read", ["-f", "/a", "/b/d"], "/a = 1\n/b/d = \n", "", 0],
    ["options may follow operands (getopt permutes)", "read", ["/a", "-f"], "/a = 1\n", "", 0],
    ["read a missing key: rc 2", "read", ["/a", "/missing"], "1\n", "Failed to read /missing\n", 2],
    ["read -q is quiet, same rc", "read", ["-q", "/missing"], "", "", 2],
    ["read a path without a leading slash: rc 1", "read", ["rel"], "", "Failed to read rel\n", 1],
    [
      "a failure beats a missing key",
      "read",
      ["/missing", "rel"],
      "",
      "Failed to read /missing\nFailed to read rel\n",
      1,
    ],
    ["a trailing slash is just missing", "read", ["/b/"], "", "Failed to read /b/\n", 2],
    ["read -e uses the default", "read", ["-e", "dflt", "/missing"], "dflt\n", "", 0],
    ["--default=VAL", "read", ["--default=dflt", "/missing"], "dflt\n", "", 0],
    ["--default VAL, abbreviated", "read", ["--def", "dflt", "/a"], "1\n", "", 0],
    [
      "--default with two paths",
      "read",
      ["-e", "x", "/a", "/b"],
      "",
      "--default only valid with exactly 1 path\n",
      1,
    ],
    [
      "--default with write",
      "write",
      ["-e", "x", "/a", "1"],
      "",
      "--default valid only for read command\n",
      1,
    ],
    ["-n with read", "read", ["-n", "1", "/a"], "", "-n valid only for watch command\n", 1],
    ["write a value of 3072 bytes", "write", ["/big", "x".repeat(3072)], "", "Failed to write /big\n", 1],
    [
      "write a bad key continues with the next pair",
      "write",
      ["/d/", "x", "/after", "y"],
      "",
      "Failed to write /d/\n",
      1,
    ],
    ["the pair after a bad key was written", "read", ["/after"], "y\n", "", 0],
    ["multiread strips the prefix", "multiread", ["/b"], "/c = x\\x09y \\xc3\\xa9\n/d = \n", "", 0],
    [
      "multiread -f keeps full keys",
      "multiread",
      ["-f", "/b/"],
      "/b/c = x\\x09y \\xc3\\xa9\n/b/d = \n",
      "",
      0,
    ],
    ["multiread -r", "multiread", ["-r", "/b/c"], " = x\ty \xc3\xa9\n", "", 0],
    ["multiread without matches", "multiread", ["/none"], "", "", 0],
    ["list strips the prefix", "list", ["/b/"], "c\nd\n", "", 0],
    ["list -f", "list", ["-f", "/b"], "/b/c\n/b/d\n", "", 0],
    ["list needs exactly one path", "list", ["/a", "/b"], "", "LIST command accept only one path\n", 1],
    ["list with options but no path", "list", ["-f"], "", "LIST command accept only one path\n", 1],
    ["rm a missing key is fine", "rm", ["/nothing", "/nothing/"], "", "", 0],
    ["rm a bad path", "rm", ["rel"], "", "Failed to remove rel\n", 1],
    ["rm a subtree", "rm", ["/b/"], "", "", 0],
    ["the subtree is gone", "list", ["/b/"], "", "", 0],
    ["read -x removes after reading", "read", ["-x", "/after"], "y\n", "", 0],
    ["the key read with -x is gone", "read", ["-q", "/after"], "", "", 2],
    ["watch -n 0 registers and exits", "watch", ["-n", "0", "/w"], "", "", 0],
    ["-n must be a number", "watch", ["-n", "x", "/w"], "", 'Cannot use -n "x": not an integer\n', 1],
  ];
  for (const [name, tool, args, stdout, stderr, code] of cases) {
    t.same(await run(tool, args, env), { code, stdout, stderr }, name);
  }
});

t.test("usage, unknown options and qubesdb-cmd -c", async (t) => {
  const db = await startTestDaemon(t);
  const env = { QUBESDB_SOCKET: db.socket };
  await (await db.client()).write("/a", "1");
  const usage: Array<[string, string, string[], number]> = [
    ["no arguments: usage, rc 0", "read", [], 0],
    ["-h: usage, rc 0", "write", ["-h"], 0],
    ["options without paths: usage, rc 0", "read", ["-f"], 0],
    ["qubesdb-cmd without -c: usage, rc 0", "cmd", ["/a"], 0],
    ["qubesdb-cmd -c with an unknown command: usage, rc 0", "cmd", ["-c", "bogus", "/a"], 0],
  ];
  for (const [name, tool, args, code] of usage) {
    const result = await run(tool, args, env);
    t.same([result.code, result.stdout, result.stderr.startsWith(USAGE_START)], [code, "", true], name);
  }
  const unknown = await run("read", ["-z", "/a"], env);
  t.same(
    [unknown.code, unknown.stderr.split("\n")[0]],
    [1, "qubesdb-read: invalid option -- 'z'"],
    "unknown option",
  );
  const cases: Array<[string, string, string[], string, string, number]> = [
    ["qubesdb-cmd -c read", "cmd", ["-c", "read", "/a"], "1\n", "", 0],
    ["qubesdb-cmd -cread", "cmd", ["-cread", "-f", "/a"], "/a = 1\n", "", 0],
    ["-c not first", "cmd", ["/a", "-c", "read"], "", "-c must be first argument\n", 1],
    [
      "-c with a named tool",
      "read",
      ["-c", "read", "/a"],
      "",
      "-c valid only for qubesdb-cmd, not qubesdb-read\n",
      1,
    ],
  ];
  for (const [name, tool, args, stdout, stderr, code] of cases) {
    t.same(await run(tool, args, env), { code, stdout, stderr }, name);
  }
});

t.test("socket selection: --socket, -d, QUBESDB_SOCKET, fallback to .ro.sock, and no daemon", async (t) => {
  const db = await startTestDaemon(t);
  await (await db.client()).write("/a", "1");
  symlinkSync(db.socket, join(db.dir, "qubesdb.testvm.sock"));
  symlinkSync(db.roSocket, join(db.dir, "qubesdb.rovm.ro.sock"));
  const runDir = { QUBESDB_RUN_DIR: db.dir, QUBESDB_SOCKET: "/nonexistent/qubesdb.sock" };
  const cases: Array<[string, string, string[], Record<string, string>, string, string, number]> = [
    ["--socket PATH", "read", ["--socket", db.socket, "/a"], runDir, "1\n", "", 0],
    ["-d NAME", "read", ["-d", "testvm", "/a"], runDir, "1\n", "", 0],
    ["-d NAME with only the RO socket: reads work", "read", ["-d", "rovm", "/a"], runDir, "1\n", "", 0],
    [
      "-d NAME with only the RO socket: writes fail",
      "write",
      ["-d", "rovm", "/a", "2"],
      runDir,
      "",
      "Failed to write /a\n",
      1,
    ],
    [
      "-d NAME without a daemon",
      "read",
      ["-d", "nosuch", "/a"],
      runDir,
      "",
      "Failed connect to nosuch daemon\n",
      1,
    ],
    ["QUBESDB_SOCKET without a daemon", "read", ["/a"], runDir, "", "Failed connect to local daemon\n", 1],
    [
      "QUBESDB_RUN_DIR/qubesdb.sock",
      "read",
      ["/a"],
      { QUBESDB_RUN_DIR: db.dir, QUBESDB_SOCKET: "" },
      "1\n",
      "",
      0,
    ],
  ];
  for (const [name, tool, args, env, stdout, stderr, code] of cases) {
    t.same(await run(tool, args, env), { code, stdout, stderr }, name);
  }
});

t.test("watch prints events until it has N; read -w waits for the exact key", async (t) => {
  const db = await startTestDaemon(t);
  const env = { QUBESDB_SOCKET: db.socket };
  const writer = await db.client();
  const watch = await run("watch", ["-n", "2", "/w/"], env, async () => {
    await writer.write("/w/k", "1");
  });
  t.same(watch, { code: 0, stdout: "/w/k\n/w/k\n", stderr: "" });
  let step = 0;
  const wait = await run("read", ["-w", "-f", "/later"], env, async () => {
    step++;
    if (step === 3) await writer.write("/other", "x"); // an event for another path does not end the wait
    if (step === 6) await writer.write("/later", "");
  });
  t.same(wait, { code: 0, stdout: "/later = \n", stderr: "" }, "an empty value counts as existing");
});

t.test("watch reports a lost daemon", async (t) => {
  const db = await startTestDaemon(t);
  const writer = await db.client();
  let stopped = false;
  const result = await run("watch", ["-n", "-1", "/w"], { QUBESDB_SOCKET: db.socket }, async (stdout) => {
    // once the tool has shown an event it is surely registered: then kill the daemon
    if (stopped) return;
    if (stdout() === "") await writer.write("/w", "1").catch(() => {});
    else {
      stopped = true;
      await db.stop();
    }
  });
  t.same(
    [result.code, result.stdout.split("\n").every((line) => line === "/w" || line === ""), result.stderr],
    [1, true, "Failed to read watch\n"],
  );
});

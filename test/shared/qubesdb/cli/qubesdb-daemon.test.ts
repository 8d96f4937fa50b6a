import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { DAEMON_JS } from "../../../helpers/qubesdb.js";

interface Started {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

function startDaemon(args: string[], env: Record<string, string> = {}): Started {
  const child = spawn(process.execPath, [DAEMON_JS, ...args], {
    env: { ...process.env, NODE_OPTIONS: "", NOTIFY_SOCKET: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((r) => {
    const s = net.createConnection({ path });
    s.once("connect", () => {
      s.destroy();
      r(true);
    });
    s.once("error", () => r(false));
  });
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("timed out");
}

function tempDir(t: Tap): string {
  const dir = mkdtempSync(join(tmpdir(), `qdbd-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
type Tap = { teardown(fn: () => unknown): void };

t.test("READY=1 is sent once both sockets accept connections; stdout stays empty", async (t) => {
  const dir = tempDir(t);
  const notify = join(dir, "notify");
  const script = [
    "import socket, sys",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
    "s.bind(sys.argv[1])",
    "print('bound', flush=True)",
    "data = s.recvmsg(4096, socket.CMSG_SPACE(64))[0].decode()",
    "import os",
    "ok = all(os.path.exists(p) for p in sys.argv[2:])",
    "print(data.replace('\\n', ' ') + ('sockets-exist' if ok else 'sockets-missing'), flush=True)",
  ].join("\n");
  const socket = join(dir, "qubesdb.sock");
  const roSocket = join(dir, "qubesdb.ro.sock");
  const receiver = spawn("python3", ["-c", script, notify, socket, roSocket], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let received = "";
  receiver.stdout.on("data", (c: Buffer) => {
    received += c.toString();
  });
  await waitFor(async () => received.startsWith("bound"));
  const daemon = startDaemon(["--socket", socket, "--ro-socket", roSocket], { NOTIFY_SOCKET: notify });
  t.teardown(() => daemon.child.kill("SIGKILL"));
  await waitFor(async () => received.includes("READY=1"));
  t.match(received, /READY=1.*sockets-exist/);
  t.ok(await canConnect(socket));
  t.ok(await canConnect(roSocket));
  daemon.child.kill("SIGTERM");
  t.equal(await daemon.exited, 0, "SIGTERM exits 0");
  t.equal(daemon.stdout(), "", "nothing on stdout");
  t.notOk(existsSync(socket), "RW socket removed");
  t.notOk(existsSync(roSocket), "RO socket removed");
});

t.test("a stale socket file is replaced; a socket taken over by someone else is left alone", async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, "db.sock");
  const roSocket = join(dir, "db.ro.sock");
  writeFileSync(socket, "stale");
  const daemon = startDaemon(["--socket", socket, "--ro-socket", roSocket]);
  t.teardown(() => daemon.child.kill("SIGKILL"));
  await waitFor(() => canConnect(socket));
  await waitFor(() => canConnect(roSocket));
  writeFileSync(join(dir, "other"), "someone else's");
  renameSync(join(dir, "other"), roSocket);
  daemon.child.kill("SIGTERM");
  t.equal(await daemon.exited, 0);
  t.notOk(existsSync(socket), "our socket removed");
  t.ok(existsSync(roSocket), "the replaced path was not ours and stays");
});

t.test("--name VM uses $QUBESDB_RUN_DIR/qubesdb.VM.sock and .ro.sock", async (t) => {
  const dir = tempDir(t);
  const daemon = startDaemon(["--name", "testvm"], { QUBESDB_RUN_DIR: join(dir, "run") });
  t.teardown(() => daemon.child.kill("SIGKILL"));
  await waitFor(() => canConnect(join(dir, "run", "qubesdb.testvm.sock")));
  await waitFor(() => canConnect(join(dir, "run", "qubesdb.testvm.ro.sock")));
  daemon.child.kill("SIGTERM");
  t.equal(await daemon.exited, 0);
});

t.test("bad arguments and unusable paths exit 1 with a message", async (t) => {
  const unknown = startDaemon(["--bogus"]);
  t.equal(await unknown.exited, 1);
  t.match(unknown.stderr(), /^Cannot parse arguments: .*--bogus/);
  const dir = tempDir(t);
  writeFileSync(join(dir, "file"), "");
  const blocked = startDaemon(["--socket", join(dir, "file", "x.sock")]);
  t.equal(await blocked.exited, 1);
  t.match(blocked.stderr(), /^ERROR /m);
});

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { notifyReady, notifyReloading } from "../../shared/sd-notify.js";

/** A one-datagram NOTIFY_SOCKET receiver (Node has no unix datagram sockets; python3 does). */
function receiveOne(path: string): { message: Promise<string>; ready: Promise<void> } {
  const script = [
    "import socket, sys",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
    "s.bind(sys.argv[1])",
    "print('bound', flush=True)",
    "data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))",
    "sys.stdout.write(data.decode())",
  ].join("\n");
  const child = spawn("python3", ["-c", script, path], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  let onBound: () => void = () => {};
  const ready = new Promise<void>((r) => {
    onBound = r;
  });
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (output.startsWith("bound\n")) onBound();
  });
  const message = new Promise<string>((r) => child.on("close", () => r(output.replace(/^bound\n/, ""))));
  return { message, ready };
}

t.test("notifyReady and notifyReloading send sd_notify datagrams to $NOTIFY_SOCKET", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `sdn-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "notify");
  const env = { ...process.env, NOTIFY_SOCKET: socket };

  const first = receiveOne(socket);
  await first.ready;
  await notifyReady(env);
  const ready = await first.message;
  t.match(ready, /^READY=1$/m);
  t.match(ready, new RegExp(`^MAINPID=${process.pid}$`, "m"));

  rmSync(socket);
  const second = receiveOne(socket);
  await second.ready;
  await notifyReloading(env);
  const reloading = await second.message;
  t.match(reloading, /^RELOADING=1$/m);
  t.match(reloading, /^MONOTONIC_USEC=\d+$/m);
});

t.test("without $NOTIFY_SOCKET nothing is sent and nothing fails", async (t) => {
  await notifyReady({ PATH: process.env["PATH"] ?? "" });
  t.pass();
});

t.test("an unreachable $NOTIFY_SOCKET is an error that says what was sent", async (t) => {
  await t.rejects(notifyReady({ ...process.env, NOTIFY_SOCKET: "/nonexistent/notify" }), {
    name: "SystemError",
    message: /^Cannot notify systemd "READY=1": /,
  });
});

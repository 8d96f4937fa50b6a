import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { listenControlSocket, sendControlRequest } from "../../../proxyvm/sources/control-socket.js";

function tempSocket(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "agent-ctl-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "agent.sock");
}

t.test("a request reaches the handler and its reply comes back", async (t) => {
  const path = tempSocket(t);
  const seen: unknown[] = [];
  const server = await listenControlSocket(path, async (request) => {
    seen.push(request);
    return { ok: false, error: "Cannot converge" };
  });
  t.teardown(() => server.close());
  const reply = await sendControlRequest(path, {
    type: "vif",
    command: "online",
    vif: "vif3.0",
    ip: "10.137.0.5",
  });
  t.same(reply, { ok: false, error: "Cannot converge" });
  t.same(seen, [{ type: "vif", command: "online", vif: "vif3.0", ip: "10.137.0.5" }]);
});

t.test("without a daemon the client says so instead of failing", async (t) => {
  t.equal(await sendControlRequest(tempSocket(t), { type: "status" }), undefined);
});

t.test("a malformed request is answered with the reason", async (t) => {
  const path = tempSocket(t);
  const server = await listenControlSocket(path, async () => ({ ok: true }));
  t.teardown(() => server.close());
  const reply = await new Promise<string>((resolve) => {
    const socket = createConnection(path, () => socket.write('{"type":"vif","command":"reboot"}\n'));
    let data = "";
    socket.on("data", (chunk) => (data += chunk));
    socket.on("end", () => resolve(data));
  });
  const parsed = JSON.parse(reply) as { ok: boolean; error: string };
  t.equal(parsed.ok, false);
  t.match(parsed.error, /^Cannot parse control request: /);
});

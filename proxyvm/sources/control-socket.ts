/**
 * The agent's control socket: the hotplug hook hands a vif event to the
 * running daemon and waits for that vif to converge; `status` asks for the
 * state. One JSON object per line each way; one request per connection.
 * Requests are validated with zod (a boundary: any local root process can
 * write to it).
 */
import { mkdirSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { z } from "zod";
import { describeError, SystemError } from "../../shared/errors.js";

/** Default `--control-socket`. */
export const DEFAULT_CONTROL_SOCKET = "/run/qubes-fakeip/agent.sock";
const MAX_LINE = 64 * 1024;

export const vifRequestSchema = z.object({
  type: z.literal("vif"),
  command: z.enum(["online", "offline"]),
  vif: z.string().max(64),
  ip: z.string().max(64),
  ip6: z.string().max(64).optional(),
  mac: z.string().max(64).optional(),
});
export const requestSchema = z.discriminatedUnion("type", [
  vifRequestSchema,
  z.object({ type: z.literal("status") }),
]);
export type ControlRequest = z.infer<typeof requestSchema>;

export interface ControlReply {
  readonly ok: boolean;
  readonly error?: string;
  readonly status?: unknown;
}

export type ControlHandler = (request: ControlRequest) => Promise<ControlReply>;

function readLine(socket: Socket, onLine: (line: string) => void, onTooLong: () => void): void {
  let buffer = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    const end = buffer.indexOf("\n");
    if (end >= 0) {
      socket.removeAllListeners("data");
      onLine(buffer.slice(0, end));
    } else if (buffer.length > MAX_LINE) {
      socket.removeAllListeners("data");
      onTooLong();
    }
  });
}

/** Listens on `path` (a stale socket file is replaced). */
export async function listenControlSocket(path: string, handler: ControlHandler): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    socket.on("error", () => socket.destroy());
    const reply = (value: ControlReply) => socket.end(`${JSON.stringify(value)}\n`);
    readLine(
      socket,
      (line) => {
        let request: ControlRequest;
        try {
          request = requestSchema.parse(JSON.parse(line));
        } catch (error) {
          reply({ ok: false, error: `Cannot parse control request: ${describeError(error)}` });
          return;
        }
        handler(request).then(reply, (error: unknown) => reply({ ok: false, error: describeError(error) }));
      },
      () => reply({ ok: false, error: "Cannot parse control request: longer than 64 KiB" }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/**
 * Sends one request; resolves `undefined` when no daemon listens (no socket
 * file, or a stale one), so the caller can do the work itself.
 */
export async function sendControlRequest(
  path: string,
  request: ControlRequest,
): Promise<ControlReply | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let answered = false;
    socket.on("connect", () => {
      socket.write(`${JSON.stringify(request)}\n`);
      readLine(
        socket,
        (line) => {
          answered = true;
          socket.destroy();
          try {
            resolve(JSON.parse(line) as ControlReply);
          } catch (error) {
            reject(new SystemError(`Cannot read the agent's reply on "${path}": ${describeError(error)}`));
          }
        },
        () => reject(new SystemError(`Cannot read the agent's reply on "${path}": longer than 64 KiB`)),
      );
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT" || error.code === "ECONNREFUSED") resolve(undefined);
      else reject(new SystemError(`Cannot reach the agent on "${path}": ${error.message}`, { cause: error }));
    });
    socket.on("close", () => {
      if (!answered) reject(new SystemError(`Cannot read the agent's reply on "${path}": connection closed`));
    });
  });
}

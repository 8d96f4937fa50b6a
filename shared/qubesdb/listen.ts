/**
 * Unix listening sockets that behave like the reference daemon's (spec §9.1):
 * a stale file is removed before bind, the socket is mode 0666, and on
 * shutdown the file is removed only if its inode is still the one we created
 * (another daemon may have taken the path over meanwhile).
 */
import { chmodSync, statSync, unlinkSync } from "node:fs";
import net from "node:net";
import { SystemError } from "../errors.js";

export interface UnixListener {
  readonly path: string;
  readonly server: net.Server;
  /** Stops listening; removes the socket file only if it is still ours. */
  close(): Promise<void>;
}

function removeStale(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new SystemError(`Cannot remove stale socket "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export async function listenUnix(
  path: string,
  onConnection: (socket: net.Socket) => void,
  mode = 0o666,
): Promise<UnixListener> {
  removeStale(path);
  const server = net.createServer({ noDelay: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(new SystemError(`Cannot listen on "${path}": ${error.message}`, { cause: error })),
    );
    server.listen(path, () => resolve());
  });
  server.on("error", () => {});
  chmodSync(path, mode);
  const inode = inodeOf(path);
  let closed = false;
  return {
    path,
    server,
    close: async () => {
      if (closed) return;
      closed = true;
      if (inodeOf(path) === inode) {
        // libuv unlinks the socket path when the handle closes, which is what we want here.
        await new Promise<void>((resolve) => server.close(() => resolve()));
        return;
      }
      // Not ours any more: closing the handle would unlink the other daemon's socket, so
      // keep the handle (the process is about to exit) and refuse new connections.
      server.removeAllListeners("connection");
      server.on("connection", (socket: net.Socket) => socket.destroy());
      server.unref();
    },
  };
}

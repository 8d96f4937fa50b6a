/**
 * Which socket a tool or client talks to (DESIGN.md "Contracts: QubesDB"),
 * first match wins: `--socket PATH`; `-d NAME` → `$QUBESDB_RUN_DIR/qubesdb.NAME.sock`;
 * `$QUBESDB_SOCKET`; `$QUBESDB_RUN_DIR/qubesdb.sock`. The run directory
 * defaults to `/var/run/qubes` (the reference's compiled-in path, spec §9.1).
 * Like libqubesdb (§9.2), a RW socket that cannot be connected falls back to
 * the matching `.ro.sock`.
 */
import net from "node:net";
import { join } from "node:path";
import { QubesDbDisconnectedError, QubesDbInvalidInputError } from "./errors.js";

export const DEFAULT_RUN_DIR = "/var/run/qubes";

export interface SocketSelection {
  socket?: string | undefined;
  domain?: string | undefined;
}

export interface ResolvedSocket {
  /** the socket to try first */
  path: string;
  /** the read-only socket to try when `path` cannot be connected, if there is one */
  fallback: string | undefined;
}

/** A VM name as Qubes allows it: letters, digits, `_ . -`, starting with a letter, at most 31 characters. */
const DOMAIN_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;

/** `x.sock` → `x.ro.sock`; nothing for a path that is already read-only or does not end in `.sock`. */
export function readOnlyCounterpart(path: string): string | undefined {
  if (!path.endsWith(".sock") || path.endsWith(".ro.sock")) return undefined;
  return `${path.slice(0, -".sock".length)}.ro.sock`;
}

export function resolveSocketPath(
  selection: SocketSelection,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ResolvedSocket {
  const runDir = env["QUBESDB_RUN_DIR"] || DEFAULT_RUN_DIR;
  let path: string;
  if (selection.socket !== undefined && selection.socket !== "") {
    path = selection.socket;
  } else if (selection.domain !== undefined && selection.domain !== "") {
    if (!DOMAIN_NAME.test(selection.domain)) {
      throw new QubesDbInvalidInputError(
        `Cannot use domain "${selection.domain}": not a valid VM name (letters, digits, "_", ".", "-")`,
      );
    }
    path = join(runDir, `qubesdb.${selection.domain}.sock`);
  } else if (env["QUBESDB_SOCKET"]) {
    path = env["QUBESDB_SOCKET"];
  } else {
    path = join(runDir, "qubesdb.sock");
  }
  return { path, fallback: readOnlyCounterpart(path) };
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path, noDelay: true });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/** Connects to `resolved.path`, or, failing that for any reason, to its read-only fallback (§9.2). */
export async function connectSocket(resolved: ResolvedSocket): Promise<{ socket: net.Socket; path: string }> {
  try {
    return { socket: await connectOnce(resolved.path), path: resolved.path };
  } catch (error) {
    if (resolved.fallback !== undefined) {
      try {
        return { socket: await connectOnce(resolved.fallback), path: resolved.fallback };
      } catch {
        // report the first failure: the RW socket is what the caller asked for
      }
    }
    throw new QubesDbDisconnectedError(
      `Cannot connect to QubesDB "${resolved.path}": ${(error as Error).message}`,
      { cause: error },
    );
  }
}

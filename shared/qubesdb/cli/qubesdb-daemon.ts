#!/usr/bin/env node
/**
 * qubesdb-daemon --socket PATH [--ro-socket PATH] [--name VM]
 *
 * Serves one in-memory QubesDB. Without `--socket`, the paths follow the
 * usual selection (socket.ts): `--name VM` → `$QUBESDB_RUN_DIR/qubesdb.VM.sock`,
 * else `$QUBESDB_SOCKET`, else `$QUBESDB_RUN_DIR/qubesdb.sock`, each with its
 * `.ro.sock` read-only twin. With `--socket` only the sockets named are made.
 * Foreground only: logs go to stderr, stdout stays empty, readiness is
 * reported with sd_notify when `$NOTIFY_SOCKET` is set (after both sockets
 * listen), SIGTERM removes the sockets that are still ours and exits 0.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { describeError } from "../../errors.js";
import { createLogger } from "../../log.js";
import { notifyReady } from "../../sd-notify.js";
import { QubesDbDaemon } from "../daemon.js";
import { resolveSocketPath } from "../socket.js";

const USAGE = "Usage: qubesdb-daemon [--socket PATH [--ro-socket PATH]] [--name VM]";

async function main(): Promise<number> {
  const logger = createLogger();
  let values: { socket?: string; "ro-socket"?: string; name?: string; help?: boolean };
  try {
    values = parseArgs({
      options: {
        socket: { type: "string" },
        "ro-socket": { type: "string" },
        name: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    process.stderr.write(`Cannot parse arguments: ${(error as Error).message}\n${USAGE}\n`);
    return 1;
  }
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const resolved = resolveSocketPath({ socket: values.socket, domain: values.name });
  const socket = resolved.path;
  const roSocket = values["ro-socket"] ?? (values.socket === undefined ? resolved.fallback : undefined);
  for (const path of [socket, roSocket]) {
    if (path !== undefined) mkdirSync(dirname(path), { recursive: true, mode: 0o775 });
  }
  const daemon = await QubesDbDaemon.start({
    socket,
    ...(roSocket === undefined ? {} : { roSocket }),
    logger,
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { signal });
    void daemon.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  logger.info("listening", { socket, "ro-socket": roSocket, name: values.name });
  await notifyReady();
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`ERROR ${describeError(error)}\n`);
    process.exit(1);
  },
);

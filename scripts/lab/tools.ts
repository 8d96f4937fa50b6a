/**
 * The project's own commands the lab drives, found next to this file in
 * `dist/` (the lab never uses whatever happens to be on PATH). A command that
 * is not built yet is reported by name, never replaced by a stand-in.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NotFoundError } from "../../shared/errors.js";

/** `dist/` — this file is `dist/scripts/lab/tools.js` once built. */
export const DIST_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Built entry points by command name (package.json "bin", relative to dist/). */
export const COMMANDS = {
  "qubesdb-daemon": "shared/qubesdb/cli/qubesdb-daemon.js",
  "qubesdb-read": "shared/qubesdb/cli/qubesdb-read.js",
  "qubesdb-write": "shared/qubesdb/cli/qubesdb-write.js",
  "qvm-create": "dom0/cli/qvm-create.js",
  "qvm-prefs": "dom0/cli/qvm-prefs.js",
  "qvm-features": "dom0/cli/qvm-features.js",
  "qvm-firewall": "dom0/cli/qvm-firewall.js",
  "qvm-ls": "dom0/cli/qvm-ls.js",
  "qubes-fakeip-dom0": "dom0/cli/qubes-fakeip-dom0.js",
  "qubes-fakeip-agent": "proxyvm/cli/qubes-fakeip-agent.js",
  supervisor: "scripts/lab/supervisor.js",
  guest: "scripts/lab/guest.js",
  "net-client": "scripts/lab/net-client.js",
  "test-server": "scripts/servers/test-server.js",
} as const;

export type CommandName = keyof typeof COMMANDS;

export function commandPath(name: CommandName): string {
  return join(DIST_DIR, COMMANDS[name]);
}

export function isBuilt(name: CommandName): boolean {
  return existsSync(commandPath(name));
}

/** `[node, script]` for a built command; throws a reason naming the missing piece. */
export function nodeCommand(name: CommandName): [string, string] {
  const path = commandPath(name);
  if (!existsSync(path)) {
    throw new NotFoundError(
      `Cannot run "${name}": ${path} is not built (that piece has not landed or "npm run build" was not run)`,
    );
  }
  return [process.execPath, path];
}

/** Names of the commands in `names` that are not built. */
export function missing(names: readonly CommandName[]): CommandName[] {
  return names.filter((n) => !isBuilt(n));
}

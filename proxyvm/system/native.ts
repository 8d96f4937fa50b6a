/**
 * The agent's native helper (native/netns.c, built by `npm run build` into
 * dist/native/netns.node): setns(2) for sockets, named namespaces without a
 * process, and libnftables in any namespace. Loaded on first use, so modules
 * that only plan (dry-run printing, unit tests of planners) never need it.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { SystemError } from "../../shared/errors.js";

export interface NativeNetns {
  /** The calling (main) thread joins the network namespace of `fd` (sockets created meanwhile stay there). */
  setns(fd: number): void;
  /**
   * `ip netns add`: a new namespace bound at `path` (made on a worker thread),
   * with `sysctls` ([name below /proc/sys, value]) written inside it first.
   */
  createNetns(path: string, sysctls?: readonly (readonly [string, string])[]): Promise<void>;
  /** `ip netns del`: lazy unmount and unlink of `path`; nothing when already gone. */
  deleteNetns(path: string): void;
  /**
   * One nft script as one transaction via libnftables, in the namespace of
   * `fd` (-1: this one); resolves with what nft printed (a `list` command's text).
   */
  nftRun(script: string, fd: number): Promise<string>;
}

/** dist/proxyvm/system/native.js → dist/native; proxyvm/system/native.ts (tests) → dist/native */
const CANDIDATES = ["../../native/netns.node", "../../dist/native/netns.node"];

let loaded: NativeNetns | undefined;

export function nativeNetns(): NativeNetns {
  if (loaded !== undefined) return loaded;
  const found = CANDIDATES.map((c) => new URL(c, import.meta.url)).find((url) => existsSync(url));
  if (found === undefined) {
    throw new SystemError(
      `Cannot find the agent's native helper (netns.node next to ${new URL("../../", import.meta.url).pathname}); run "npm run build"`,
    );
  }
  loaded = createRequire(import.meta.url)(found.pathname) as NativeNetns;
  return loaded;
}

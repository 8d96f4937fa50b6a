/**
 * The only module that runs `nft` (STYLE.md: narrow interfaces in front of
 * every side effect). A script is applied with one `nft -f -` run, which the
 * kernel executes as one transaction: it applies completely or not at all.
 */
import { execa } from "execa";
import { SystemError } from "../../shared/errors.js";

export interface NftOptions {
  /** named network namespace (`/run/netns/NAME`); the current one when absent */
  netns?: string;
}

function command(args: string[], options: NftOptions): [string, string[]] {
  if (options.netns === undefined) return ["nft", args];
  return ["nsenter", [`--net=/run/netns/${options.netns}`, "nft", ...args]];
}

/** Applies an nft script atomically. The error carries nft's own message (it names the failing line). */
export async function applyNftScript(script: string, options: NftOptions = {}): Promise<void> {
  const [file, args] = command(["-f", "-"], options);
  const result = await execa(file, args, { input: script, reject: false });
  if (result.exitCode !== 0) {
    const where = options.netns === undefined ? "" : ` in netns "${options.netns}"`;
    throw new SystemError(
      `Cannot apply nft script${where}: nft exited with ${result.exitCode ?? result.signal}: ${String(result.stderr).trim()}`,
    );
  }
}

/** Runs `nft -j ARGS...` and returns the parsed `nftables` array. */
export async function listNftJson(args: string[], options: NftOptions = {}): Promise<unknown[]> {
  const [file, argv] = command(["-j", ...args], options);
  const result = await execa(file, argv, { reject: false });
  if (result.exitCode !== 0) {
    throw new SystemError(`Cannot run "nft -j ${args.join(" ")}": ${String(result.stderr).trim()}`);
  }
  const parsed = JSON.parse(String(result.stdout)) as { nftables?: unknown[] };
  return parsed.nftables ?? [];
}

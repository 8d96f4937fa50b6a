/**
 * The only module that runs `nft` (STYLE.md: narrow interfaces in front of
 * every side effect). A script is applied with one `nft -f -` run, which the
 * kernel executes as one transaction: it applies completely or not at all.
 */
import { spawn } from "node:child_process";
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

/**
 * A long-lived `nft -i` session: each script goes to nft as one line, which
 * nft runs as one transaction (like `nft -f`: all or nothing), without a new
 * process per change (exec, and the netlink socket's close after a commit,
 * cost ~20 ms on a loaded machine; the transaction itself ~3 ms).
 * Completion is detected by a `describe` command after each script (pure
 * userspace, fixed output); anything else nft prints meanwhile is the error.
 * Scripts must not contain `#` comments (they would swallow the rest of the line).
 */
export interface NftSession {
  /** Applies a script as one transaction; rejects with nft's message. Rejects too when the session died. */
  apply(script: string): Promise<void>;
  /** `true` once the session died or was closed (a new one must be opened) */
  readonly ended: boolean;
  close(): void;
}

const SESSION_MARKER = "meta expression, datatype mark";

export function openNftSession(options: NftOptions = {}): NftSession {
  // stderr joined to stdout so an error is read before the marker that follows it
  const [file, args] =
    options.netns === undefined
      ? ["sh", ["-c", "exec nft -i 2>&1"]]
      : ["nsenter", [`--net=/run/netns/${options.netns}`, "sh", "-c", "exec nft -i 2>&1"]];
  const child = spawn(file, args, { stdio: ["pipe", "pipe", "ignore"] });
  // Idle, the session holds no reference on the event loop: a one-shot command
  // exits when its work is done instead of waiting for a close() it never makes.
  let inFlight = 0;
  const hold = (on: boolean) => {
    for (const handle of [child, child.stdin, child.stdout] as { ref(): void; unref(): void }[]) {
      if (on) handle.ref();
      else handle.unref();
    }
  };
  hold(false);
  let output = "";
  let waiter: ((text: string | undefined) => void) | undefined;
  let dead = false;
  let queue: Promise<unknown> = Promise.resolve();
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    output += chunk;
    const end = output.indexOf("\n", output.indexOf(SESSION_MARKER));
    if (output.includes(SESSION_MARKER) && end >= 0) {
      const before = output.slice(0, output.indexOf(SESSION_MARKER));
      output = output.slice(end + 1);
      waiter?.(before);
    }
  });
  const onGone = () => {
    dead = true;
    waiter?.(undefined);
  };
  child.on("exit", onGone);
  child.on("error", onGone);
  child.stdin.on("error", onGone);
  const run = (script: string) =>
    new Promise<void>((resolve, reject) => {
      if (dead) return reject(new SystemError("Cannot apply nft script: the nft session has ended"));
      waiter = (text) => {
        waiter = undefined;
        if (text === undefined) reject(new SystemError("Cannot apply nft script: the nft session has ended"));
        else if (text.trim() !== "") reject(new SystemError(`Cannot apply nft script: ${text.trim()}`));
        else resolve();
      };
      const line = script
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "")
        .join("; ");
      child.stdin.write(`${line}\ndescribe meta mark\n`);
    });
  return {
    apply(script) {
      if (inFlight++ === 0) hold(true);
      const next = queue.then(() => run(script));
      queue = next.catch(() => undefined);
      void queue.then(() => {
        if (--inFlight === 0) hold(false);
      });
      return next;
    },
    get ended() {
      return dead;
    },
    close() {
      dead = true;
      child.stdin.end();
      child.kill();
    },
  };
}

/**
 * An exclusive lock on the dom0 store, so that concurrent `qvm-*` runs
 * serialise their load-modify-save(-publish) steps and never lose an update.
 *
 * The lock is a file created with O_EXCL holding the owner's pid. A lock whose
 * pid no longer exists (the owner crashed) is stale and is taken over; an
 * empty lock (owner created it but has not written its pid yet) is only
 * considered stale once it is older than EMPTY_STALE_MS.
 */
import { open, readFile, stat, unlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { SystemError } from "../../shared/errors.js";

const DEFAULT_TIMEOUT_MS = 60_000;
const RETRY_MS = 10;
const EMPTY_STALE_MS = 5_000;

export interface LockOptions {
  readonly timeoutMs?: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readOwner(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** True when the lock at `path` (content `owner`) belongs to nobody any more. */
async function isStale(path: string, owner: string): Promise<boolean> {
  const pid = Number(owner.trim());
  if (owner.trim() === "") {
    const info = await stat(path).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > EMPTY_STALE_MS;
  }
  return !Number.isInteger(pid) || pid <= 0 || !isAlive(pid);
}

/** Takes the lock, waiting for its holder; resolves to the function that releases it. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  for (;;) {
    try {
      const handle = await open(path, "wx", 0o644);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new SystemError(`Cannot lock "${path}": ${(error as Error).message}`, { cause: error });
      }
    }
    const owner = await readOwner(path);
    if (owner === undefined) continue;
    if (await isStale(path, owner)) {
      // Re-read right before removing so that a lock taken over by another
      // process in the meantime is not removed by mistake.
      if ((await readOwner(path)) === owner) await unlink(path).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new SystemError(`Cannot lock "${path}": held by process ${owner.trim()}`);
    }
    await sleep(RETRY_MS + Math.floor(Math.random() * RETRY_MS));
  }
}

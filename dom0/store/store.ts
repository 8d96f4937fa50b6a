/**
 * The dom0 store: `QUBES_DIR/qubes.xml` loaded as a DOM, changed under the
 * store lock and saved atomically (temporary file, fsync, rename, fsync of
 * the directory), so a crash leaves either the old or the new file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Document } from "@xmldom/xmldom";
import { SystemError } from "../../shared/errors.js";
import { acquireLock } from "./lock.js";
import { createQubesXml, parseQubesXml, serializeQubesXml } from "./qubes-xml.js";

export const QUBES_XML = "qubes.xml";
export const LOCK_FILE = "qubes.xml.lock";

/** The store directory from `--qubes-dir`, else `$QUBES_DIR`, else Qubes' `/var/lib/qubes`. */
export function resolveQubesDir(option?: string): string {
  return option ?? process.env["QUBES_DIR"] ?? "/var/lib/qubes";
}

export function qubesXmlPath(dir: string): string {
  return join(dir, QUBES_XML);
}

async function loadText(dir: string): Promise<string | undefined> {
  try {
    return await readFile(qubesXmlPath(dir), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SystemError(`Cannot read "${qubesXmlPath(dir)}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Reads the collection (a fresh one when qubes.xml does not exist). Saves are atomic, so no lock is needed. */
export async function readStore(dir: string): Promise<Document> {
  const text = await loadText(dir);
  return text === undefined ? createQubesXml() : parseQubesXml(text, qubesXmlPath(dir));
}

/** Writes `text` to `path` atomically, keeping the mode of the file it replaces. */
export async function writeFileAtomic(path: string, text: string, directory: string): Promise<void> {
  const mode = await stat(path).then(
    (info) => info.mode & 0o7777,
    () => 0o644,
  );
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const handle = await open(temporary, "wx", mode);
    try {
      await handle.chmod(mode); // open's mode is filtered by the umask
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new SystemError(`Cannot write "${path}": ${(error as Error).message}`, { cause: error });
  }
  const dirHandle = await open(directory, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Runs `fn` while holding the store lock (also used by read-only publishers, see docs/dom0.md). */
export async function withStoreLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const release = await acquireLock(join(dir, LOCK_FILE));
  try {
    return await fn();
  } finally {
    await release();
  }
}

/**
 * Load, change, save, all under the store lock. `mutate` changes the DOM it
 * is given (or throws: then nothing is saved). The file is written only when
 * its text changed. `afterSave` runs still under the lock — publishing there
 * keeps publications in the same order as the saves.
 */
export async function withStore<T>(
  dir: string,
  mutate: (doc: Document) => T | Promise<T>,
  afterSave?: (doc: Document, result: T) => Promise<void>,
): Promise<T> {
  return withStoreLock(dir, async () => {
    const before = await loadText(dir);
    const doc = before === undefined ? createQubesXml() : parseQubesXml(before, qubesXmlPath(dir));
    const result = await mutate(doc);
    const after = serializeQubesXml(doc);
    if (after !== before) await writeFileAtomic(qubesXmlPath(dir), after, dir);
    if (afterSave !== undefined) await afterSave(doc, result);
    return result;
  });
}

/**
 * The `file` pool: one sparse image file per volume,
 * `QUBES_DIR/appvms/VM/{private,root,volatile}.img` (Qubes' file driver
 * layout). Sizes are file lengths; a grown file gains a hole, so creating or
 * growing a volume costs no disk space.
 */
import { constants } from "node:fs";
import { mkdir, open, rename, stat, truncate, unlink } from "node:fs/promises";
import { join } from "node:path";
import { NotFoundError, SystemError } from "../../shared/errors.js";
import { assertSize, assertVolumeRef, type Pool, type VolumeImport, type VolumeRef } from "./pool.js";

/** Qubes keeps every VM's files under this directory of QUBES_DIR. */
export const APPVMS_DIR = "appvms";
/** Suffix of a volume being imported; renamed over the image on commit. */
const IMPORT_SUFFIX = ".new";

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === "ENOENT";

export class FilePool implements Pool {
  readonly driver = "file";
  readonly #qubesDir: string;

  constructor(qubesDir: string) {
    this.#qubesDir = qubesDir;
  }

  vmDir(vm: string): string {
    return join(this.#qubesDir, APPVMS_DIR, vm);
  }

  imagePath(ref: VolumeRef): string {
    assertVolumeRef(ref);
    return join(this.vmDir(ref.vm), `${ref.volume}.img`);
  }

  async create(ref: VolumeRef, size: number): Promise<void> {
    assertSize(ref, size);
    const path = this.imagePath(ref);
    try {
      await mkdir(this.vmDir(ref.vm), { recursive: true });
      const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        await handle.truncate(size);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw new SystemError(`Cannot create volume "${path}"`, { cause: error });
    }
  }

  async remove(ref: VolumeRef): Promise<void> {
    const path = this.imagePath(ref);
    for (const file of [path, path + IMPORT_SUFFIX]) {
      await unlink(file).catch((error) => {
        if (!isMissing(error)) throw new SystemError(`Cannot remove volume "${file}"`, { cause: error });
      });
    }
  }

  async resize(ref: VolumeRef, size: number): Promise<void> {
    assertSize(ref, size);
    const path = this.imagePath(ref);
    await this.size(ref);
    try {
      await truncate(path, size);
    } catch (error) {
      throw new SystemError(`Cannot resize volume "${path}" to ${size} bytes`, { cause: error });
    }
  }

  async size(ref: VolumeRef): Promise<number> {
    const path = this.imagePath(ref);
    try {
      return (await stat(path)).size;
    } catch (error) {
      if (isMissing(error)) throw new NotFoundError(`Cannot find volume "${path}": it does not exist`);
      throw new SystemError(`Cannot read the size of volume "${path}"`, { cause: error });
    }
  }

  async exists(ref: VolumeRef): Promise<boolean> {
    return stat(this.imagePath(ref)).then(
      () => true,
      () => false,
    );
  }

  async export(ref: VolumeRef): Promise<string> {
    await this.size(ref);
    return this.imagePath(ref);
  }

  async import(ref: VolumeRef): Promise<VolumeImport> {
    const size = await this.size(ref);
    const path = this.imagePath(ref);
    const fresh = path + IMPORT_SUFFIX;
    const handle = await open(fresh, "w", 0o644).catch((error) => {
      throw new SystemError(`Cannot create volume "${fresh}"`, { cause: error });
    });
    try {
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
    return {
      path: fresh,
      commit: async () => {
        // 1. data on disk, 2. rename(2) atomically replaces the image: a reader sees old or new, never half.
        const synced = await open(fresh, "r+");
        try {
          await synced.sync();
        } finally {
          await synced.close();
        }
        await rename(fresh, path).catch((error) => {
          throw new SystemError(`Cannot replace volume "${path}" with "${fresh}"`, { cause: error });
        });
      },
      abort: () => unlink(fresh).catch(() => {}),
    };
  }
}

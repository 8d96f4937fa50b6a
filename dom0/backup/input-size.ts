/**
 * The size of a tar writer input. For a regular file that is `fstat`'s size;
 * for a block device `stat` says 0, and Node cannot issue the BLKGETSIZE64
 * ioctl, so the size comes from sysfs: `/sys/dev/block/MAJOR:MINOR/size` is
 * the device's size in 512-byte sectors, always in that unit whatever the
 * device's logical block size (Documentation/ABI/stable/sysfs-block). The
 * device is addressed by the major:minor of the opened file's `rdev`, so the
 * size belongs to exactly the device we read, even through symlinks such as
 * /dev/qubes_dom0/vm-work-private.
 */

import type { Stats } from "node:fs";
import { readFile } from "node:fs/promises";
import { InvalidInputError } from "../../shared/errors.js";

/** sysfs reports block device sizes in these units (not the logical block size). */
const SYSFS_SECTOR = 512;

/** Linux `new_encode_dev` layout of dev_t, as Node's Stats#rdev gives it. */
export function splitDeviceNumber(rdev: number): { major: number; minor: number } {
  const major = Math.floor(rdev / 2 ** 8) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 2 ** 12) & 0xfff00);
  return { major, minor };
}

/** Returns the byte size of an opened input, or throws naming `path` when it is neither file nor block device. */
export async function readInputSize(path: string, stats: Stats): Promise<number> {
  if (stats.isFile()) return stats.size;
  if (!stats.isBlockDevice()) {
    throw new InvalidInputError(`Cannot archive "${path}": not a regular file or block device`);
  }
  const { major, minor } = splitDeviceNumber(stats.rdev);
  const sysfs = `/sys/dev/block/${major}:${minor}/size`;
  let text: string;
  try {
    text = await readFile(sysfs, "utf8");
  } catch (error) {
    throw new InvalidInputError(`Cannot read the size of block device "${path}": ${sysfs} is unreadable`, {
      cause: error,
    });
  }
  const sectors = Number(text.trim());
  if (!Number.isSafeInteger(sectors) || sectors < 0) {
    throw new InvalidInputError(
      `Cannot read the size of block device "${path}": ${sysfs} says "${text.trim()}"`,
    );
  }
  return sectors * SYSFS_SECTOR;
}

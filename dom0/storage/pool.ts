/**
 * The storage pool driver interface (after Qubes' `qubes.storage.Pool`,
 * reduced to what backup and restore need). A volume is addressed by VM name
 * and volume name; drivers own where and how it lives.
 */
import { InvalidInputError } from "../../shared/errors.js";

export const VOLUME_NAMES = ["private", "root", "volatile"] as const;
export type VolumeName = (typeof VOLUME_NAMES)[number];

export interface VolumeRef {
  readonly vm: string;
  readonly volume: VolumeName;
}

/** Qubes' default volume sizes (qubes/vm/*.py `volume_config`, `qvm-create` defaults). */
export const DEFAULT_VOLUME_SIZES: Readonly<Record<VolumeName, number>> = {
  private: 2 * 2 ** 30,
  root: 10 * 2 ** 30,
  volatile: 10 * 2 ** 30,
};

/**
 * Volumes a VM of `vmClass` owns. AppVMs and DispVMs run on a snapshot of
 * their template's root, so only templates and standalones own a root.
 */
export function volumesOf(vmClass: string): readonly VolumeName[] {
  return vmClass === "TemplateVM" || vmClass === "StandaloneVM"
    ? ["private", "root", "volatile"]
    : ["private", "volatile"];
}

/** Volumes whose contents a backup carries (volatile is scratch space, recreated on every start). */
export function backedUpVolumesOf(vmClass: string): readonly VolumeName[] {
  return volumesOf(vmClass).filter((v) => v !== "volatile");
}

/** Qubes' VM name rule (qubes/vm/__init__.py `validate_name`); also keeps names safe in paths and LV names. */
const VM_NAME = /^[a-zA-Z][a-zA-Z0-9_.-]{0,30}$/;

export function assertVolumeRef(ref: VolumeRef): void {
  if (!VM_NAME.test(ref.vm) || ref.vm === "." || ref.vm === "..") {
    throw new InvalidInputError(`Cannot use VM name "${ref.vm}": not a valid Qubes VM name`);
  }
  if (!(VOLUME_NAMES as readonly string[]).includes(ref.volume)) {
    throw new InvalidInputError(
      `Cannot use volume "${ref.volume}": expected one of ${VOLUME_NAMES.join(", ")}`,
    );
  }
}

export function assertSize(ref: VolumeRef, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidInputError(
      `Cannot size volume "${ref.vm}:${ref.volume}" to "${size}": not a byte count`,
    );
  }
}

/** A fresh volume being filled; nothing changes for readers of the volume until `commit`. */
export interface VolumeImport {
  /** A writable path (file or block device) of the volume's current size. */
  readonly path: string;
  /** Makes the filled volume the current one, atomically where the driver allows. */
  commit(): Promise<void>;
  /** Discards the fresh volume; the current one is untouched. */
  abort(): Promise<void>;
}

export interface Pool {
  readonly driver: string;
  create(ref: VolumeRef, size: number): Promise<void>;
  /** Removes the volume; a volume that does not exist is not an error (teardown must keep going). */
  remove(ref: VolumeRef): Promise<void>;
  resize(ref: VolumeRef, size: number): Promise<void>;
  size(ref: VolumeRef): Promise<number>;
  exists(ref: VolumeRef): Promise<boolean>;
  /** A path whose contents can be read now (LVM: activates the volume). */
  export(ref: VolumeRef): Promise<string>;
  /** Starts writing a fresh volume of the existing volume's size, to replace it on commit. */
  import(ref: VolumeRef): Promise<VolumeImport>;
}

/**
 * The `lvm_thin` pool: one thin logical volume per volume, named like
 * Qubes' driver does (`vm-VM-VOLUME` in VG/THINPOOL), managed through the
 * `lvm` command-line tool. Imports go to `vm-VM-VOLUME-import` and are
 * swapped in by renames on commit. Thin LV sizes are rounded up by LVM to
 * the volume group's extent size (usually 4 MiB).
 */
import { execa } from "execa";
import { NotFoundError, SystemError } from "../../shared/errors.js";
import { assertSize, assertVolumeRef, type Pool, type VolumeImport, type VolumeRef } from "./pool.js";

/** Runs `lvm ARGS...` and returns stdout; the default runs the real tool. */
export type LvmRunner = (args: readonly string[]) => Promise<string>;

export const runLvm: LvmRunner = async (args) => {
  const result = await execa("lvm", args, { reject: false });
  if (result.exitCode !== 0) {
    throw new SystemError(
      `Cannot run "lvm ${args.join(" ")}": exit code ${result.exitCode}: ${String(result.stderr).trim()}`,
    );
  }
  return String(result.stdout);
};

/** Qubes' lvm_thin naming (qubes/storage/lvm.py): `vm-<vm>-<volume>`, imports get `-import`. */
export function lvName(ref: VolumeRef, suffix = ""): string {
  assertVolumeRef(ref);
  return `vm-${ref.vm}-${ref.volume}${suffix}`;
}

export class LvmThinPool implements Pool {
  readonly driver = "lvm_thin";
  readonly #vg: string;
  readonly #thinPool: string;
  readonly #run: LvmRunner;

  constructor(options: { volumeGroup: string; thinPool: string; run?: LvmRunner }) {
    this.#vg = options.volumeGroup;
    this.#thinPool = options.thinPool;
    this.#run = options.run ?? runLvm;
  }

  #lv(ref: VolumeRef, suffix = ""): string {
    return `${this.#vg}/${lvName(ref, suffix)}`;
  }

  #device(ref: VolumeRef, suffix = ""): string {
    return `/dev/${this.#lv(ref, suffix)}`;
  }

  async #createLv(ref: VolumeRef, suffix: string, size: number): Promise<void> {
    await this.#run([
      "lvcreate",
      "-T",
      `${this.#vg}/${this.#thinPool}`,
      "-n",
      lvName(ref, suffix),
      "-V",
      `${size}b`,
    ]);
  }

  async create(ref: VolumeRef, size: number): Promise<void> {
    assertSize(ref, size);
    await this.#createLv(ref, "", size);
  }

  async remove(ref: VolumeRef): Promise<void> {
    for (const suffix of ["-import", ""]) {
      if (await this.#lvExists(this.#lv(ref, suffix)))
        await this.#run(["lvremove", "-f", this.#lv(ref, suffix)]);
    }
  }

  async resize(ref: VolumeRef, size: number): Promise<void> {
    assertSize(ref, size);
    const current = await this.size(ref);
    if (size === current) return;
    // lvextend refuses to shrink and lvreduce to grow; -f because a fresh volume has nothing to lose.
    const args = size > current ? ["lvextend"] : ["lvreduce", "-f"];
    await this.#run([...args, "-L", `${size}b`, this.#lv(ref)]);
  }

  async #lvExists(lv: string): Promise<boolean> {
    const out = await this.#run(["lvs", "--noheadings", "-o", "lv_name", this.#vg]);
    const name = lv.slice(lv.indexOf("/") + 1);
    return out.split("\n").some((line) => line.trim() === name);
  }

  async size(ref: VolumeRef): Promise<number> {
    if (!(await this.#lvExists(this.#lv(ref)))) {
      throw new NotFoundError(`Cannot find volume "${this.#lv(ref)}": it does not exist`);
    }
    const out = await this.#run([
      "lvs",
      "--noheadings",
      "--units",
      "b",
      "--nosuffix",
      "-o",
      "lv_size",
      this.#lv(ref),
    ]);
    return Number(out.trim());
  }

  async exists(ref: VolumeRef): Promise<boolean> {
    return this.#lvExists(this.#lv(ref));
  }

  async export(ref: VolumeRef): Promise<string> {
    await this.#run(["lvchange", "-ay", this.#lv(ref)]);
    return this.#device(ref);
  }

  async import(ref: VolumeRef): Promise<VolumeImport> {
    const size = await this.size(ref);
    const importLv = this.#lv(ref, "-import");
    if (await this.#lvExists(importLv)) await this.#run(["lvremove", "-f", importLv]);
    await this.#createLv(ref, "-import", size);
    await this.#run(["lvchange", "-ay", importLv]);
    return {
      path: this.#device(ref, "-import"),
      commit: async () => {
        // 1. move the old volume aside, 2. rename the import into place, 3. drop the old one:
        // at every point one complete volume exists under a known name.
        await this.#run(["lvrename", this.#vg, lvName(ref), lvName(ref, "-back")]);
        await this.#run(["lvrename", this.#vg, lvName(ref, "-import"), lvName(ref)]);
        await this.#run(["lvremove", "-f", this.#lv(ref, "-back")]);
      },
      abort: async () => {
        await this.#run(["lvremove", "-f", importLv]);
      },
    };
  }
}

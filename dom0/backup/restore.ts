/**
 * `qvm-backup-restore`: reads a backup as a stream. qubes.xml comes first
 * and decides what is restored; then each volume entry is restored as:
 *  1. the VM's volumes were created fresh at their default sizes, like a new VM;
 *  2. the volume is resized to exactly the entry's real size (from the pax
 *     header: GNU.sparse.realsize, else the entry size);
 *  3. a fresh import volume of that size gets the data extents at their
 *     offsets (holes are never written, so they stay holes);
 *  4. the reader has checked the map against the stored data; only then is
 *     the import committed.
 * Any failure removes the VMs this run created and did not finish; VMs that
 * existed before are never touched.
 */
import { open } from "node:fs/promises";
import { describeError, InvalidInputError, SystemError } from "../../shared/errors.js";
import {
  backedUpVolumesOf,
  DEFAULT_VOLUME_SIZES,
  type Pool,
  type VolumeImport,
  type VolumeName,
  volumesOf,
} from "../storage/pool.js";
import { FIREWALL_ENTRY, QUBES_XML_ENTRY } from "./backup.js";
import { listDomains, planRestore, type RestorePlanEntry } from "./backup-plan.js";
import { ByteSource } from "./byte-source.js";
import { type TarEntry, TarReader } from "./tar-reader.js";
import type { RestoreTarget } from "./vm-source.js";

/** qubes.xml and firewall.xml are small; anything bigger is not what backup wrote. */
const MAX_METADATA_SIZE = 16 << 20;
/** Refuse volumes larger than this unless told otherwise: a corrupt size must not fill a pool. */
export const DEFAULT_MAX_VOLUME_SIZE = 2 ** 44;

export interface RestoreOptions {
  /** The archive as chunks (a Readable is one); a chunk may be reused once the next-but-one is pulled. */
  readonly input: AsyncIterable<Buffer>;
  readonly target: RestoreTarget;
  readonly pool: Pool;
  readonly vms: readonly string[];
  readonly renameConflicting: boolean;
  readonly verifyOnly: boolean;
  readonly maxVolumeSize?: number;
}

export interface RestoredVm {
  readonly backupName: string;
  readonly name: string;
  readonly volumes: ReadonlyMap<VolumeName, number>;
}

export class RestoreError extends SystemError {
  override name = "RestoreError";
}

async function readAll(reader: TarReader, entry: TarEntry): Promise<Buffer> {
  if (entry.realSize > MAX_METADATA_SIZE) {
    throw new InvalidInputError(
      `Cannot restore "${entry.name}": ${entry.realSize} bytes is too large for it`,
    );
  }
  const out = Buffer.alloc(entry.realSize);
  await reader.readData(entry, (offset, piece) => {
    piece.copy(out, offset);
  });
  return out;
}

const VOLUME_ENTRY = /^([^/]+)\/(private|root)\.img$/;

export async function restoreBackup(options: RestoreOptions): Promise<RestoredVm[]> {
  const reader = new TarReader(new ByteSource(options.input));
  const maxVolumeSize = options.maxVolumeSize ?? DEFAULT_MAX_VOLUME_SIZE;
  const created: string[] = [];
  const done = new Map<string, Map<VolumeName, number>>();
  let plan: Map<string, RestorePlanEntry> | undefined;
  let importing: VolumeImport | undefined;
  let current = "the archive";

  try {
    for (let entry = await reader.next(); entry !== undefined; entry = await reader.next()) {
      current = entry.name;
      if (plan === undefined) {
        if (entry.name !== QUBES_XML_ENTRY) {
          throw new InvalidInputError(
            `Cannot restore "${entry.name}": a backup starts with ${QUBES_XML_ENTRY}`,
          );
        }
        const domains = listDomains((await readAll(reader, entry)).toString("utf8"), QUBES_XML_ENTRY);
        const existing = options.verifyOnly ? undefined : await options.target.vmNames();
        plan = new Map(
          planRestore(domains, options.vms, existing, options.renameConflicting).map((p) => [
            p.backupName,
            p,
          ]),
        );
        for (const p of plan.values()) {
          done.set(p.name, new Map());
          if (options.verifyOnly) continue;
          await options.target.addVm(p.xml, p.name);
          created.push(p.name);
          for (const volume of volumesOf(p.vmClass)) {
            await options.pool.create({ vm: p.name, volume }, DEFAULT_VOLUME_SIZES[volume]);
          }
        }
        continue;
      }
      const slash = entry.name.indexOf("/");
      const vm = plan.get(entry.name.slice(0, slash));
      if (vm === undefined) continue; // a VM the caller did not ask for
      if (entry.name === `${vm.backupName}/${FIREWALL_ENTRY}`) {
        const data = await readAll(reader, entry);
        if (!options.verifyOnly) await options.target.writeFirewallXml(vm.name, data);
        continue;
      }
      const match = VOLUME_ENTRY.exec(entry.name);
      if (match === null || entry.type !== "0") {
        throw new InvalidInputError(`Cannot restore "${entry.name}": not an entry a backup contains`);
      }
      const volume = match[2] as VolumeName;
      if (!backedUpVolumesOf(vm.vmClass).includes(volume)) {
        throw new InvalidInputError(
          `Cannot restore "${entry.name}": a ${vm.vmClass} has no ${volume} volume`,
        );
      }
      if (entry.realSize > maxVolumeSize) {
        throw new InvalidInputError(
          `Cannot restore "${entry.name}": its size ${entry.realSize} exceeds the limit ${maxVolumeSize}`,
        );
      }
      if (options.verifyOnly) {
        await reader.readData(entry, () => {});
      } else {
        const ref = { vm: vm.name, volume };
        await options.pool.resize(ref, entry.realSize);
        importing = await options.pool.import(ref);
        const handle = await open(importing.path, "r+");
        try {
          await reader.readData(entry, async (offset, piece) => {
            await handle.write(piece, 0, piece.length, offset);
          });
          await handle.sync();
        } finally {
          await handle.close();
        }
        await importing.commit();
        importing = undefined;
      }
      done.get(vm.name)!.set(volume, entry.realSize);
    }
    current = "the archive";
    if (plan === undefined)
      throw new InvalidInputError(`Cannot restore: the archive has no ${QUBES_XML_ENTRY}`);
    for (const p of plan.values()) {
      for (const volume of backedUpVolumesOf(p.vmClass)) {
        if (!done.get(p.name)!.has(volume)) {
          throw new InvalidInputError(
            `Cannot restore "${p.backupName}": the archive has no "${p.backupName}/${volume}.img"`,
          );
        }
      }
    }
    return [...plan.values()].map((p) => ({
      backupName: p.backupName,
      name: p.name,
      volumes: done.get(p.name)!,
    }));
  } catch (error) {
    await importing?.abort().catch(() => {});
    const failures: string[] = [];
    for (const name of created.reverse()) {
      if (plan !== undefined && isComplete(plan, name, done)) continue;
      for (const volume of ["private", "root", "volatile"] as const) {
        await options.pool.remove({ vm: name, volume }).catch((e) => failures.push(describeError(e)));
      }
      await options.target.removeVm(name).catch((e) => failures.push(describeError(e)));
    }
    const cleanup = failures.length > 0 ? ` (cleanup also failed: ${failures.join("; ")})` : "";
    throw new RestoreError(`Cannot restore the backup at entry "${current}"${cleanup}`, { cause: error });
  }
}

function isComplete(
  plan: ReadonlyMap<string, RestorePlanEntry>,
  name: string,
  done: ReadonlyMap<string, ReadonlyMap<VolumeName, number>>,
): boolean {
  const p = [...plan.values()].find((entry) => entry.name === name);
  return p !== undefined && backedUpVolumesOf(p.vmClass).every((v) => done.get(name)?.has(v));
}

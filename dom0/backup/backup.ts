/**
 * `qvm-backup`: one tar stream holding `qubes.xml` (only the chosen VMs),
 * then per VM its `firewall.xml` and its volumes' contents as sparse entries
 * `VM/private.img` (and `VM/root.img`), read through the pool's `export()`.
 * Entry order is fixed (qubes.xml first) so restore can plan before any
 * volume data arrives.
 */
import type { Writable } from "node:stream";
import type { Pool } from "../storage/pool.js";
import { backedUpVolumesOf } from "../storage/pool.js";
import { listDomains, selectVms, subsetQubesXml } from "./backup-plan.js";
import { createTarStream, type TarProgress } from "./tar-writer.js";
import type { VmSource } from "./vm-source.js";

export const QUBES_XML_ENTRY = "qubes.xml";
export const FIREWALL_ENTRY = "firewall.xml";

export interface BackupOptions {
  readonly source: VmSource;
  readonly pool: Pool;
  readonly vms: readonly string[];
  readonly exclude: readonly string[];
  readonly output: Writable;
  readonly onProgress?: (progress: TarProgress) => void;
}

export interface BackupSummary {
  readonly vms: readonly string[];
  /** Entry names in archive order. */
  readonly entries: readonly string[];
}

export async function writeBackup(options: BackupOptions): Promise<BackupSummary> {
  const xml = await options.source.readQubesXml();
  const chosen = selectVms(listDomains(xml, QUBES_XML_ENTRY), options.vms, options.exclude);
  const tar = createTarStream(options.output, options.onProgress ? { onProgress: options.onProgress } : {});
  const entries: string[] = [];
  await tar.addFile(
    QUBES_XML_ENTRY,
    Buffer.from(subsetQubesXml(xml, QUBES_XML_ENTRY, new Set(chosen.map((d) => d.name)))),
  );
  entries.push(QUBES_XML_ENTRY);
  for (const vm of chosen) {
    const firewall = await options.source.readFirewallXml(vm.name);
    if (firewall !== undefined) {
      await tar.addFile(`${vm.name}/${FIREWALL_ENTRY}`, firewall);
      entries.push(`${vm.name}/${FIREWALL_ENTRY}`);
    }
    for (const volume of backedUpVolumesOf(vm.vmClass)) {
      const path = await options.pool.export({ vm: vm.name, volume });
      await tar.addVolume(`${vm.name}/${volume}.img`, path);
      entries.push(`${vm.name}/${volume}.img`);
    }
  }
  await tar.finish();
  return { vms: chosen.map((d) => d.name), entries };
}

#!/usr/bin/env node
/** `qvm-backup-restore [--rename-conflicting] [--verify-only] BACKUP [VM...]`: a subset of Qubes' tool. */
import { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import { openBackup } from "../backup/open-backup.js";
import { restoreBackup } from "../backup/restore.js";
import { StoreAdapter } from "../backup/store-adapter.js";
import { openPool } from "../storage/open-pool.js";
import { resolveQubesDir } from "../store/store.js";

interface Options {
  renameConflicting?: boolean;
  verifyOnly?: boolean;
  qubesDir?: string;
  pool: string;
}

async function main(backup: string, vms: string[], opts: Options): Promise<void> {
  const qubesDir = resolveQubesDir(opts.qubesDir);
  const opened = await openBackup(backup);
  const restoring = restoreBackup({
    input: opened.stream,
    target: new StoreAdapter(qubesDir),
    pool: openPool(opts.pool, qubesDir),
    vms,
    renameConflicting: opts.renameConflicting === true,
    verifyOnly: opts.verifyOnly === true,
  });
  // A failed decompressor explains a truncated stream better than the reader can.
  const restored = await restoring.catch(async (error) => {
    await opened.done;
    throw error;
  });
  await opened.done;
  for (const vm of restored) {
    const sizes = [...vm.volumes].map(([volume, size]) => `${volume}=${size}`).join(" ");
    const as = vm.name === vm.backupName ? "" : ` as ${vm.name}`;
    process.stdout.write(`${opts.verifyOnly ? "Verified" : "Restored"} ${vm.backupName}${as} ${sizes}\n`);
  }
}

const program = new Command("qvm-backup-restore")
  .description("Restore qubes from a qvm-backup archive")
  .option("--rename-conflicting", "restore a qube whose name exists under a new name (NAME1, NAME2, ...)")
  .option("--verify-only", "read and check the whole backup; change nothing")
  .option("--qubes-dir <DIR>", "the dom0 store directory (default $QUBES_DIR or /var/lib/qubes)")
  .option("--pool <SPEC>", 'volume pool: "file" or "lvm_thin:VG/THINPOOL"', "file")
  .argument("<BACKUP>", "the archive (plain, zstd or gzip)")
  .argument("[VM...]", "qubes to restore (default: all in the backup)")
  .action(main);

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`qvm-backup-restore: ${describeError(error)}\n`);
  process.exitCode = 1;
}

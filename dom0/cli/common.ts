/**
 * What every dom0 command shares: `--qubes-dir`, error reporting (message on
 * stderr, exit status 1), and "change the store, then publish the change to
 * the running VMs" under the store lock.
 */

import type { Document } from "@xmldom/xmldom";
import type { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import type { FirewallRule } from "../../shared/firewall/index.js";
import { createLogger } from "../../shared/log.js";
import { type PublishReport, publishChange, resolveRunDir } from "../emitter/publish.js";
import { type Collection, readCollection } from "../model/collection.js";
import { resolveQubesDir, withStore } from "../store/store.js";

export interface DirOptions {
  qubesDir?: string;
}

export function addQubesDirOption(command: Command): Command {
  return command.option(
    "--qubes-dir <DIR>",
    "the dom0 store directory (default: $QUBES_DIR, else /var/lib/qubes)",
  );
}

export function qubesDirOf(options: DirOptions): string {
  return resolveQubesDir(options.qubesDir);
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Runs a command's parser; errors print as `NAME: error: MESSAGE` (Qubes' tools do the same) and exit 1. */
export async function runCommand(program: Command): Promise<void> {
  program.showHelpAfterError(false);
  try {
    await program.parseAsync();
  } catch (error) {
    process.stderr.write(`${program.name()}: error: ${describeError(error)}\n`);
    process.exitCode = 1;
  }
}

function reportPublication(report: PublishReport): void {
  for (const line of report.errors) process.stderr.write(`${line}\n`);
  if (report.errors.length > 0) {
    process.stderr.write("The change is saved; run `qubes-fakeip-dom0 sync` once the qubes above answer.\n");
    process.exitCode = 1;
  }
}

export interface ChangeResult<T> {
  readonly value: T;
  /** VMs the change was made to (they and their netvms are always republished) */
  readonly touched: readonly string[];
  /** rules before a firewall change */
  readonly firewallBefore?: ReadonlyMap<string, readonly FirewallRule[]>;
}

/**
 * Loads the store under its lock, lets `change` modify it (throwing leaves it
 * unchanged), saves it, then publishes the difference to running VMs while
 * still holding the lock, so publications happen in the order of the saves.
 */
export async function changeStore<T>(
  options: DirOptions,
  change: (doc: Document, before: Collection) => Promise<ChangeResult<T>> | ChangeResult<T>,
): Promise<T> {
  const qubesDir = qubesDirOf(options);
  let before: Collection | undefined;
  const result = await withStore(
    qubesDir,
    async (doc) => {
      before = readCollection(doc);
      return change(doc, before);
    },
    async (doc, outcome) => {
      const ctx = {
        qubesDir,
        runDir: resolveRunDir(),
        now: nowSeconds(),
        log: createLogger({ level: "warn" }),
      };
      const changeOptions =
        outcome.firewallBefore === undefined
          ? { touched: outcome.touched }
          : { touched: outcome.touched, firewallBefore: outcome.firewallBefore };
      reportPublication(await publishChange(ctx, before!, readCollection(doc), changeOptions));
    },
  );
  return result.value;
}

/** Pads columns to the widest cell, two spaces apart (Qubes' `print_table`). */
export function formatTable(rows: ReadonlyArray<readonly string[]>): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

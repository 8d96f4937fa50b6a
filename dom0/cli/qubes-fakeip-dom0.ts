#!/usr/bin/env node
/** `qubes-fakeip-dom0 sync|serve`: publish every running qube's keys once, or keep them published. */
import { Command } from "commander";
import { createLogger } from "../../shared/log.js";
import { resolveRunDir } from "../emitter/publish.js";
import { serve, syncOnce } from "../emitter/serve.js";
import { addQubesDirOption, type DirOptions, qubesDirOf, runCommand } from "./common.js";

const program = addQubesDirOption(
  new Command("qubes-fakeip-dom0").description(
    "Publish dom0's decisions (network properties, fake IPs, firewall rules) into the running qubes' QubesDB " +
      "($QUBESDB_RUN_DIR/qubesdb.NAME.sock, default /var/run/qubes)",
  ),
);

/** `--qubes-dir` is accepted before and after the subcommand. */
function dirOf(options: DirOptions): string {
  return qubesDirOf({ ...(program.opts() as DirOptions), ...options });
}

addQubesDirOption(program.command("sync").description("publish every running qube's keys once")).action(
  async (options: DirOptions) => {
    const report = await syncOnce({
      qubesDir: dirOf(options),
      runDir: resolveRunDir(),
      log: createLogger(process.env["QUBES_FAKEIP_LOG"] ? {} : { level: "warn" }),
    });
    for (const line of report.errors) process.stderr.write(`${line}\n`);
    process.stdout.write(
      `published ${report.vms} qubes: ${report.writes} writes, ${report.removes} removes\n`,
    );
    if (report.errors.length > 0) process.exitCode = 1;
  },
);

addQubesDirOption(
  program
    .command("serve")
    .description(
      "keep publishing: on every change of qubes.xml or a firewall.xml, when a qube starts, at rule expiry",
    ),
).action(async (options: DirOptions) => {
  await serve({ qubesDir: dirOf(options), runDir: resolveRunDir(), log: createLogger() });
});

await runCommand(program);

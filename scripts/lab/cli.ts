#!/usr/bin/env node
/**
 * qubes-fakeip-lab up|check|down|demo — a whole Qubes-like topology in
 * network namespaces on this host, its end-to-end probes, and the demo.
 */
import { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import { runCheck } from "./check.js";
import { runDemo } from "./demo.js";
import { describeLab } from "./describe.js";
import { down } from "./down.js";
import { parseDir, parseLabOptions } from "./options.js";
import { DEFAULT_DIR, DEFAULT_FAKE_GATEWAY, DEFAULT_FAKE_IP, DEFAULT_FAKE_NETMASK } from "./topology.js";
import { up } from "./up.js";

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function fail(error: unknown): never {
  process.stderr.write(`qubes-fakeip-lab: ${describeError(error)}\n`);
  process.exit(1);
}

const program = new Command("qubes-fakeip-lab").description("Qubes fake-IP lab in network namespaces");

program
  .command("up")
  .description("build the lab")
  .option("--clients <n>", "clients sharing the fake IP (plus one without)", "3")
  .option("--fake-ip <addr>", "visible IP of the fake-IP clients", DEFAULT_FAKE_IP)
  .option("--fake-gateway <addr>", "their visible gateway", DEFAULT_FAKE_GATEWAY)
  .option("--fake-netmask <mask>", "their visible netmask", DEFAULT_FAKE_NETMASK)
  .option("--dir <dir>", "state directory", DEFAULT_DIR)
  .action(async (raw: Record<string, unknown>) => {
    try {
      const state = await up(parseLabOptions(raw), say);
      for (const line of describeLab(state)) say(line);
      process.exitCode = state.problems.length === 0 ? 0 : 1;
    } catch (error) {
      fail(error);
    }
  });

program
  .command("check")
  .description("run the end-to-end probes against the running lab")
  .option("--json", 'print {"probes": [...]}')
  .option("--dir <dir>", "state directory", DEFAULT_DIR)
  .action(async (raw: { json?: boolean; dir?: string }) => {
    try {
      process.exitCode = await runCheck(parseDir(raw.dir), { json: raw.json === true, write: say });
    } catch (error) {
      fail(error);
    }
  });

program
  .command("down")
  .description("remove everything the lab made")
  .option("--dir <dir>", "state directory", DEFAULT_DIR)
  .action(async (raw: { dir?: string }) => {
    try {
      const dir = parseDir(raw.dir);
      const report = await down(dir);
      if (!report.found) say(`no lab in ${dir}: nothing to remove`);
      else
        say(
          `removed ${report.removedNamespaces.length} namespaces, stopped ${report.stopped.length} processes`,
        );
      for (const failure of report.failures) process.stderr.write(`${failure}\n`);
      process.exitCode = report.failures.length === 0 ? 0 : 1;
    } catch (error) {
      fail(error);
    }
  });

program
  .command("demo")
  .description("up, a narrated scenario, check, down")
  .option("--dir <dir>", "state directory", DEFAULT_DIR)
  .action(async (raw: { dir?: string }) => {
    try {
      process.exitCode = await runDemo(parseDir(raw.dir));
    } catch (error) {
      fail(error);
    }
  });

await program.parseAsync(process.argv);

#!/usr/bin/env node
/**
 * `qubes-fakeip-agent`: the ProxyVM daemon (no subcommand), the hotplug hook
 * (`vif online|offline`) and `status`. Runs in the ProxyVM's network
 * namespace: "the ProxyVM" is the current one.
 */
import { Command } from "commander";
import { describeError } from "../../shared/errors.js";
import { createLogger } from "../../shared/log.js";
import { normaliseGlobalOptions, parseVifArguments } from "./options.js";
import { runDaemon, runHook, runStatus } from "./run.js";

const program = new Command("qubes-fakeip-agent")
  .description("Qubes ProxyVM agent: per-vif routing, anti-spoofing and fake-IP NAT namespaces")
  .option(
    "--qubesdb-socket <path>",
    "QubesDB socket (else $QUBESDB_SOCKET, else $QUBESDB_RUN_DIR/qubesdb.sock)",
  )
  .option("--control-socket <path>", "the agent's control socket (default: /run/qubes-fakeip/agent.sock)")
  .option(
    "--state-dir <dir>",
    "where vif facts survive a restart (default: /run/qubes-fakeip, or PATH.state beside a given --control-socket)",
  )
  .option("--dry-run", "print the plan (ip and nft text) and touch nothing", false)
  .option(
    "--dns-server <address>",
    "DNS server for firewall rules with dsthost (repeatable; default: the system's)",
    (value: string, previous: string[]) => [...previous, value],
    [] as string[],
  )
  .showHelpAfterError()
  .action(async (_options, command: Command) => {
    process.exitCode = await runDaemon(normaliseGlobalOptions(command.optsWithGlobals()), createLogger());
  });

const collect = (value: string, previous: string[]) => [...previous, value];
program
  .command("vif")
  .description("hotplug hook: a vif came up or went down")
  .argument("<command>", "online or offline")
  .argument("<vif>", "vif name, vifDOMID.IDX")
  .requiredOption("--ip <address>", "native address (IPv4, and optionally again for IPv6)", collect, [])
  .option("--mac <mac>", "the VM's MAC (default 00:16:3e:5e:6c:00)")
  .action(async (verb: string, vif: string, options: { ip: string[]; mac?: string }, command: Command) => {
    if (verb !== "online" && verb !== "offline") {
      command.error(`Cannot handle vif command "${verb}": expected online or offline`, { exitCode: 2 });
    }
    const args = parseVifArguments(vif, options.ip, options.mac);
    const globals = normaliseGlobalOptions(command.optsWithGlobals());
    process.exitCode = await runHook(globals, verb === "online" ? "online" : "offline", args, createLogger());
  });

program
  .command("status")
  .description("each vif's state and the components' status")
  .option("--json", "machine-readable output", false)
  .action(async (options: { json: boolean }, command: Command) => {
    process.exitCode = await runStatus(normaliseGlobalOptions(command.optsWithGlobals()), options.json);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`qubes-fakeip-agent: ${describeError(error)}\n`);
  process.exitCode = error instanceof Error && error.name === "InvalidInputError" ? 2 : 1;
});

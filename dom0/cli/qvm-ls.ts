#!/usr/bin/env node
/** `qvm-ls`: one line per qube with its network view (Qubes' columns NAME STATE CLASS LABEL TEMPLATE NETVM, plus IP and VISIBLE-IP). */
import { Command } from "commander";
import { closeAll, connectRunning, resolveRunDir } from "../emitter/publish.js";
import { readCollection } from "../model/collection.js";
import { templateOf } from "../model/features.js";
import { nativeIp, netvmOf, visibleIp } from "../model/network.js";
import { readStore } from "../store/store.js";
import { addQubesDirOption, type DirOptions, formatTable, qubesDirOf, runCommand } from "./common.js";

const program = addQubesDirOption(
  new Command("qvm-ls").description(
    "List qubes: name, state (Running when its QubesDB socket answers), class, label, template, netvm, native IP, visible IP",
  ),
).action(async (options: DirOptions) => {
  const c = readCollection(await readStore(qubesDirOf(options)));
  const clients = await connectRunning(resolveRunDir(), [...c.vms.keys()]);
  await closeAll(clients);
  const rows = [["NAME", "STATE", "CLASS", "LABEL", "TEMPLATE", "NETVM", "IP", "VISIBLE-IP"]];
  const vms = [...c.vms.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const vm of vms) {
    const label = vm.properties.get("label");
    const running = vm.vmClass === "AdminVM" || clients.has(vm.name);
    rows.push([
      vm.name,
      running ? "Running" : "Halted",
      vm.vmClass,
      label === undefined ? "-" : (c.labels.get(label) ?? label),
      templateOf(c, vm)?.name ?? "-",
      netvmOf(c, vm)?.name ?? "-",
      nativeIp(c, vm) ?? "-",
      visibleIp(c, vm) ?? "-",
    ]);
  }
  process.stdout.write(formatTable(rows));
});

await runCommand(program);

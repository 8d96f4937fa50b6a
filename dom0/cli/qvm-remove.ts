#!/usr/bin/env node
/** `qvm-remove [-f] NAME...`: removes qubes from the store (and their firewall.xml). */
import { rm, rmdir } from "node:fs/promises";
import { dirname } from "node:path";
import { Command } from "commander";
import { firewallXmlPath } from "../firewall/index.js";
import { removeVm } from "../model/edit.js";
import { addQubesDirOption, changeStore, type DirOptions, qubesDirOf, runCommand } from "./common.js";

const program = addQubesDirOption(
  new Command("qvm-remove")
    .description("Remove qubes (no confirmation is asked)")
    .option("-f, --force", "accepted for compatibility; this tool never asks")
    .argument("<NAME...>", "the qubes to remove"),
).action(async (names: string[], options: DirOptions) => {
  const dir = qubesDirOf(options);
  await changeStore(options, async (doc) => {
    for (const name of names) removeVm(doc, name);
    return { value: undefined, touched: names };
  });
  for (const name of names) {
    const file = firewallXmlPath(dir, name);
    await rm(file, { force: true });
    // Only the folder this project made; anything else in it stays.
    await rmdir(dirname(file)).catch(() => undefined);
  }
});

await runCommand(program);

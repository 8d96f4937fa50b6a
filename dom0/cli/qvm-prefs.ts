#!/usr/bin/env node
/** `qvm-prefs VM [PROP [VALUE]] [--default]`, as Qubes' qvm-prefs. */
import { Command } from "commander";
import { InvalidInputError } from "../../shared/errors.js";
import { getVm, readCollection } from "../model/collection.js";
import { resetProperty, setProperty } from "../model/edit.js";
import { getProperty, listProperties } from "../model/properties.js";
import { readStore } from "../store/store.js";
import {
  addQubesDirOption,
  changeStore,
  type DirOptions,
  formatTable,
  qubesDirOf,
  runCommand,
} from "./common.js";

interface Options extends DirOptions {
  default?: boolean;
}

const program = addQubesDirOption(
  new Command("qvm-prefs")
    .description("List, show, set or reset properties of a qube")
    .option("-D, --default", "reset the property to its default")
    .argument("<VM>", "the qube")
    .argument("[PROPERTY]", "the property to show or set")
    .argument("[VALUE]", 'the new value ("" or none for no netvm)'),
).action(
  async (vmName: string, property: string | undefined, value: string | undefined, options: Options) => {
    if (property === undefined) {
      if (options.default) throw new InvalidInputError("Cannot reset: --default needs a property");
      const c = readCollection(await readStore(qubesDirOf(options)));
      const rows = listProperties(c, getVm(c, vmName)).map((p) => [p.name, p.isDefault ? "D" : "-", p.value]);
      process.stdout.write(formatTable(rows));
      return;
    }
    if (options.default) {
      if (value !== undefined)
        throw new InvalidInputError(`Cannot reset property "${property}": --default takes no value`);
      await changeStore(options, (doc) => {
        resetProperty(doc, vmName, property);
        return { value: undefined, touched: [vmName] };
      });
      return;
    }
    if (value === undefined) {
      const c = readCollection(await readStore(qubesDirOf(options)));
      process.stdout.write(`${getProperty(c, getVm(c, vmName), property).value}\n`);
      return;
    }
    await changeStore(options, (doc) => {
      setProperty(doc, vmName, property, value);
      return { value: undefined, touched: [vmName] };
    });
  },
);

await runCommand(program);

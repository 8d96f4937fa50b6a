#!/usr/bin/env node
/** `qvm-features VM [FEATURE [VALUE]] [--unset]`, as Qubes' qvm-features. */
import { Command, Option } from "commander";
import { InvalidInputError } from "../../shared/errors.js";
import { getVm, readCollection } from "../model/collection.js";
import { setFeature, unsetFeature } from "../model/edit.js";
import { canonicalFeatureName } from "../model/features.js";
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
  unset?: boolean;
  default?: boolean;
  delete?: boolean;
}

const program = addQubesDirOption(
  new Command("qvm-features")
    .description("List, show, set or unset features of a qube (net/fake-ip is stored as net.fake-ip)")
    .option("-D, --unset", "remove the feature")
    .addOption(new Option("--default", "same as --unset").hideHelp())
    .addOption(new Option("--delete", "same as --unset").hideHelp())
    .argument("<VM>", "the qube")
    .argument("[FEATURE]", "the feature to show or set")
    .argument("[VALUE]", "the new value"),
).action(async (vmName: string, feature: string | undefined, value: string | undefined, options: Options) => {
  if (options.default || options.delete) options.unset = true;
  if (feature === undefined) {
    if (options.unset) throw new InvalidInputError("Cannot unset: --unset needs a feature");
    const c = readCollection(await readStore(qubesDirOf(options)));
    process.stdout.write(formatTable([...getVm(c, vmName).features].map(([name, v]) => [name, v])));
    return;
  }
  if (options.unset) {
    if (value !== undefined)
      throw new InvalidInputError(`Cannot unset feature "${feature}": --unset takes no value`);
    await changeStore(options, (doc) => ({ value: unsetFeature(doc, vmName, feature), touched: [vmName] }));
    return;
  }
  if (value === undefined) {
    const c = readCollection(await readStore(qubesDirOf(options)));
    const found = getVm(c, vmName).features.get(canonicalFeatureName(feature));
    // Like Qubes: an unset feature prints nothing and exits 1.
    if (found === undefined) process.exitCode = 1;
    else process.stdout.write(`${found}\n`);
    return;
  }
  await changeStore(options, (doc) => {
    setFeature(doc, vmName, feature, value);
    return { value: undefined, touched: [vmName] };
  });
});

await runCommand(program);

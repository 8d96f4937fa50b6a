#!/usr/bin/env node
/** `qvm-create [--class C] [--template T] [--label L] [--property K=V]... NAME`, as Qubes' qvm-create. */
import { randomUUID } from "node:crypto";
import { Command } from "commander";
import { InvalidInputError } from "../../shared/errors.js";
import { createVm } from "../model/edit.js";
import { addQubesDirOption, changeStore, type DirOptions, runCommand } from "./common.js";

interface Options extends DirOptions {
  class: string;
  template?: string;
  label?: string;
  property: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function splitProperty(text: string): [string, string] {
  const at = text.indexOf("=");
  if (at <= 0) throw new InvalidInputError(`Cannot parse property "${text}": expected NAME=VALUE`);
  return [text.slice(0, at), text.slice(at + 1)];
}

const program = addQubesDirOption(
  new Command("qvm-create")
    .description("Create a new qube")
    .option("-C, --class <CLASS>", "the class of the new qube", "AppVM")
    .option("-t, --template <TEMPLATE>", "the template (AppVM: default_template; DispVM: default_dispvm)")
    .option("-l, --label <LABEL>", "the colour label (red, orange, ...); required")
    .option("-p, --property <NAME=VALUE>", "set a property of the new qube (repeatable)", collect, [])
    .argument("<NAME>", "the name of the new qube"),
).action(async (name: string, options: Options) => {
  if (options.label === undefined)
    throw new InvalidInputError(`Cannot create "${name}": --label is required`);
  const label = options.label;
  const properties = options.property.map(splitProperty);
  await changeStore(options, (doc) => {
    const request = {
      name,
      vmClass: options.class,
      label,
      properties,
      uuid: randomUUID(),
      ...(options.template === undefined ? {} : { template: options.template }),
    };
    createVm(doc, request);
    return { value: undefined, touched: [name] };
  });
});

await runCommand(program);

#!/usr/bin/env node
/**
 * `qvm-firewall VM [list [--raw]] | add [--before N] RULE... | del [--rule-no N | RULE...] | reset |
 * set [--file F|-]`, as Qubes' qvm-firewall, plus `set` (Qubes issue 8587): replace the whole list in one step.
 */
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { InvalidInputError } from "../../shared/errors.js";
import {
  ALLOW_ALL_RULES,
  type FirewallRule,
  formatApiRule,
  parseApiRule,
} from "../../shared/firewall/index.js";
import { loadFirewall, saveFirewall } from "../firewall/index.js";
import { getVm, readCollection } from "../model/collection.js";
import { readStore } from "../store/store.js";
import {
  addQubesDirOption,
  changeStore,
  type DirOptions,
  formatTable,
  nowSeconds,
  qubesDirOf,
  runCommand,
} from "./common.js";

/**
 * Qubes' command-line conveniences: the action without `action=`
 * (`add accept dsthost=...`) and a relative expiry `expire=+SECONDS`.
 */
function parseRuleWords(words: readonly string[]): FirewallRule {
  const now = nowSeconds();
  const text = words
    .map((w) => (w === "accept" || w === "drop" ? `action=${w}` : w))
    .map((w) =>
      w.replace(/^expire=\+([0-9]{1,10})$/, (_, seconds: string) => `expire=${now + Number(seconds)}`),
    )
    .join(" ");
  // parseApiRule's errors already name the rule and the option.
  return parseApiRule(text);
}

function parseRuleLines(text: string, source: string): FirewallRule[] {
  const rules: FirewallRule[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    try {
      rules.push(parseRuleWords(line.split(/\s+/)));
    } catch (error) {
      throw new InvalidInputError(`Cannot read ${source} line ${index + 1}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  });
  return rules;
}

function cell(value: string | number | undefined): string {
  return value === undefined ? "-" : String(value);
}

/** Qubes' table: NO ACTION HOST PROTOCOL PORT(S) SPECIAL TARGET ICMP TYPE EXPIRE COMMENT. */
function formatRuleTable(rules: readonly FirewallRule[]): string {
  const header = [
    "NO",
    "ACTION",
    "HOST",
    "PROTOCOL",
    "PORT(S)",
    "SPECIAL TARGET",
    "ICMP TYPE",
    "EXPIRE",
    "COMMENT",
  ];
  const rows = rules.map((rule, index) => {
    const ports = rule.dstports;
    return [
      String(index),
      rule.action,
      cell(rule.dst4 ?? rule.dst6 ?? rule.dsthost),
      cell(rule.proto),
      ports === undefined ? "-" : ports.from === ports.to ? String(ports.from) : `${ports.from}-${ports.to}`,
      cell(rule.specialtarget),
      cell(rule.icmptype),
      cell(rule.expire),
      cell(rule.comment),
    ];
  });
  return formatTable([header, ...rows]);
}

async function checkVm(options: DirOptions, vmName: string): Promise<void> {
  getVm(readCollection(await readStore(qubesDirOf(options))), vmName);
}

/** Loads, changes and saves one VM's rules under the store lock, then publishes. */
async function editRules(
  options: DirOptions,
  vmName: string,
  edit: (rules: FirewallRule[]) => FirewallRule[],
): Promise<void> {
  const dir = qubesDirOf(options);
  await changeStore(options, async (_doc, before) => {
    getVm(before, vmName);
    const now = nowSeconds();
    const old = await loadFirewall(dir, vmName);
    await saveFirewall(dir, vmName, edit([...old]), now);
    return { value: undefined, touched: [vmName], firewallBefore: new Map([[vmName, old]]) };
  });
}

function parseIndex(text: string, what: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text))
    throw new InvalidInputError(`Cannot use ${what} "${text}": not a rule number`);
  return Number(text);
}

interface Options extends DirOptions {
  raw?: boolean;
  before?: string;
  ruleNo?: string;
  file?: string;
}

async function readRulesFile(file: string): Promise<FirewallRule[]> {
  if (file === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return parseRuleLines(Buffer.concat(chunks).toString("utf8"), "standard input");
  }
  return parseRuleLines(await readFile(file, "utf8"), `"${file}"`);
}

function refuse(action: string, option: string): never {
  throw new InvalidInputError(`Cannot use ${option} with "${action}"`);
}

async function run(vmName: string, action: string, words: string[], options: Options): Promise<void> {
  if (options.raw && action !== "list") refuse(action, "--raw");
  if (options.before !== undefined && action !== "add") refuse(action, "--before");
  if (options.ruleNo !== undefined && action !== "del") refuse(action, "--rule-no");
  if (options.file !== undefined && action !== "set") refuse(action, "--file");
  switch (action) {
    case "list": {
      if (words.length > 0) throw new InvalidInputError(`Cannot list: unexpected "${words.join(" ")}"`);
      await checkVm(options, vmName);
      const rules = await loadFirewall(qubesDirOf(options), vmName);
      process.stdout.write(
        options.raw ? rules.map((r) => `${formatApiRule(r)}\n`).join("") : formatRuleTable(rules),
      );
      return;
    }
    case "add": {
      if (words.length === 0) throw new InvalidInputError("Cannot add a rule: no rule given");
      const rule = parseRuleWords(words);
      const before = options.before === undefined ? undefined : parseIndex(options.before, "--before");
      await editRules(options, vmName, (rules) => {
        if (before !== undefined && before > rules.length) {
          throw new InvalidInputError(
            `Cannot add a rule before "${before}": "${vmName}" has ${rules.length} rules`,
          );
        }
        rules.splice(before ?? rules.length, 0, rule);
        return rules;
      });
      return;
    }
    case "del": {
      if ((options.ruleNo === undefined) === (words.length === 0)) {
        throw new InvalidInputError("Cannot delete a rule: give either --rule-no N or the rule");
      }
      const index = options.ruleNo === undefined ? undefined : parseIndex(options.ruleNo, "--rule-no");
      const wanted = words.length === 0 ? undefined : formatApiRule(parseRuleWords(words));
      await editRules(options, vmName, (rules) => {
        const at = index ?? rules.findIndex((r) => formatApiRule(r) === wanted);
        if (at < 0 || at >= rules.length) {
          const what = index === undefined ? `"${wanted}"` : `number ${index}`;
          throw new InvalidInputError(`Cannot delete rule ${what} of "${vmName}": no such rule`);
        }
        rules.splice(at, 1);
        return rules;
      });
      return;
    }
    case "reset":
      if (words.length > 0) throw new InvalidInputError(`Cannot reset: unexpected "${words.join(" ")}"`);
      await editRules(options, vmName, () => [...ALLOW_ALL_RULES]);
      return;
    case "set": {
      if (words.length > 0)
        throw new InvalidInputError(`Cannot set: unexpected "${words.join(" ")}" (use --file)`);
      const rules = await readRulesFile(options.file ?? "-");
      await editRules(options, vmName, () => rules);
      return;
    }
    default:
      throw new InvalidInputError(`Cannot run "${action}": use list, add, del, reset or set`);
  }
}

const program = addQubesDirOption(
  new Command("qvm-firewall")
    .description(
      "Manage a qube's outbound firewall rules (first match decides; unmatched packets are dropped).\n" +
        "Actions: list [--raw] | add [--before N] RULE... | del [--rule-no N | RULE...] | reset | set [--file F|-]\n" +
        "RULE is options such as: action=accept proto=tcp dst4=192.0.2.0/24 dstports=443 comment=web",
    )
    .option("--raw", "list: print rules in the form add/set take")
    .option("--before <N>", "add: insert before rule number N (default: at the end)")
    .option("--rule-no <N>", "del: delete rule number N")
    .option("--file <FILE>", "set: read the new rules, one per line, from FILE or - (standard input)")
    .argument("<VM>", "the qube")
    .argument("[ACTION]", "list, add, del, reset or set", "list")
    .argument("[RULE...]", "the rule's options"),
).action(async (vmName: string, action: string, words: string[], options: Options) => {
  await run(vmName, action, words, options);
});

await runCommand(program);

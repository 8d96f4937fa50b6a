/**
 * dom0 as an administrator drives it: the lab creates its store with the
 * project's `qvm-*` commands only (never by writing qubes.xml itself).
 */

import { run } from "./system.js";
import type { CommandName } from "./tools.js";
import { nodeCommand } from "./tools.js";
import { clientsOf, type LabPlan, NETVM, PROXYVM, TEMPLATE } from "./topology.js";

export interface Dom0Command {
  readonly command: CommandName;
  readonly args: readonly string[];
}

/**
 * The admin's commands that create the lab's VMs (pure), in groups: the first
 * group (every qvm-create, in order) runs first; the other groups, one client's
 * features each, may run concurrently (the store lock serialises their saves).
 */
export function planDom0Commands(plan: LabPlan): Dom0Command[][] {
  const q = ["--qubes-dir", plan.qubesDir];
  const create = (name: string, label: string, properties: readonly string[]): Dom0Command => ({
    command: "qvm-create",
    args: [
      ...q,
      "--class",
      "AppVM",
      "--template",
      TEMPLATE,
      "--label",
      label,
      ...properties.flatMap((p) => ["--property", p]),
      name,
    ],
  });
  const base: Dom0Command[] = [
    { command: "qvm-create", args: [...q, "--class", "TemplateVM", "--label", "black", TEMPLATE] },
    create(NETVM, "red", ["provides_network=True"]),
    { command: "qvm-prefs", args: [...q, NETVM, "netvm", ""] },
    create(PROXYVM, "green", ["provides_network=True", `netvm=${NETVM}`]),
  ];
  const groups: Dom0Command[][] = [base];
  for (const vm of clientsOf(plan)) {
    // Created in order in the first group, so dom0 hands out native IPs in name order.
    base.push(create(vm.name, vm.name.startsWith("anon") ? "purple" : "blue", [`netvm=${PROXYVM}`]));
    if (Object.keys(vm.features).length === 0) continue;
    groups.push([
      ...Object.entries(vm.features).map(
        ([feature, value]): Dom0Command => ({
          command: "qvm-features",
          args: [...q, vm.name, feature, value],
        }),
      ),
    ]);
  }
  return groups;
}

/** Environment for dom0 commands: running VMs are the QubesDB sockets in the lab's run dir. */
export function dom0Env(plan: Pick<LabPlan, "runDir">): NodeJS.ProcessEnv {
  return { ...process.env, QUBESDB_RUN_DIR: plan.runDir };
}

/** Runs one of the project's commands as dom0; returns stdout. */
export function runDom0(
  plan: Pick<LabPlan, "runDir">,
  command: CommandName,
  args: readonly string[],
): Promise<string> {
  const [node, script] = nodeCommand(command);
  return run(node, [script, ...args], { env: dom0Env(plan) });
}

/** Native IPs by VM name from `qvm-ls` (column IP; "-" for none). */
export function parseQvmLs(text: string): Map<string, string> {
  const [header, ...rows] = text
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/));
  const name = header?.indexOf("NAME") ?? -1;
  const ip = header?.indexOf("IP") ?? -1;
  if (name < 0 || ip < 0)
    throw new Error(`Cannot read qvm-ls output: no NAME and IP columns in "${text.split("\n")[0]}"`);
  const ips = new Map<string, string>();
  for (const row of rows) {
    const vm = row[name];
    const address = row[ip];
    if (vm !== undefined && address !== undefined && address !== "-") ips.set(vm, address);
  }
  return ips;
}

/** The native addresses dom0 assigned, read the way an admin would (`qvm-ls`). */
export async function readNativeIps(plan: LabPlan): Promise<Map<string, string>> {
  return parseQvmLs(await runDom0(plan, "qvm-ls", ["--qubes-dir", plan.qubesDir]));
}

/** Runs `work` over `items`, at most `limit` at a time; the first failure rejects (after the others settle). */
export async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
}

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

/** The admin's commands that create the lab's VMs, in order (pure). */
export function planDom0Commands(plan: LabPlan): Dom0Command[] {
  const q = ["--qubes-dir", plan.qubesDir];
  const cmds: Dom0Command[] = [
    { command: "qvm-create", args: [...q, "--class", "TemplateVM", "--label", "black", TEMPLATE] },
    {
      command: "qvm-create",
      args: [...q, "--class", "AppVM", "--template", TEMPLATE, "--label", "red", NETVM],
    },
    { command: "qvm-prefs", args: [...q, NETVM, "provides_network", "True"] },
    { command: "qvm-prefs", args: [...q, NETVM, "netvm", ""] },
    {
      command: "qvm-create",
      args: [...q, "--class", "AppVM", "--template", TEMPLATE, "--label", "green", PROXYVM],
    },
    { command: "qvm-prefs", args: [...q, PROXYVM, "provides_network", "True"] },
    { command: "qvm-prefs", args: [...q, PROXYVM, "netvm", NETVM] },
  ];
  for (const vm of clientsOf(plan)) {
    cmds.push({
      command: "qvm-create",
      args: [
        ...q,
        "--class",
        "AppVM",
        "--template",
        TEMPLATE,
        "--label",
        vm.name.startsWith("anon") ? "purple" : "blue",
        vm.name,
      ],
    });
    cmds.push({ command: "qvm-prefs", args: [...q, vm.name, "netvm", PROXYVM] });
    for (const [feature, value] of Object.entries(vm.features)) {
      cmds.push({ command: "qvm-features", args: [...q, vm.name, feature, value] });
    }
  }
  return cmds;
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

/** `qvm-prefs VM ip`: the native address dom0 assigned. */
export async function readNativeIp(plan: LabPlan, vm: string): Promise<string> {
  return (await runDom0(plan, "qvm-prefs", ["--qubes-dir", plan.qubesDir, vm, "ip"])).trim();
}

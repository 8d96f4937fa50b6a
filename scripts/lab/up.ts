/**
 * `lab up`: applies the plan. Each thing is recorded in lab.json before it is
 * created. A step that fails (often: a piece of the project that is not built
 * yet) is reported with its reason and the build goes on, so `check` can say
 * exactly which probes that breaks; nothing is ever faked.
 */
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describeError, SystemError } from "../../shared/errors.js";
import { mapLimit, planDom0Commands, readNativeIps, runDom0 } from "./dom0.js";
import { addVif, enableForwarding, wireNetVm } from "./links.js";
import { checkHost } from "./preflight.js";
import { plugVif, startAgent, startDom0, startGuests, startQubesDbs, startServer } from "./processes.js";
import { type LabState, loadState, recordBefore, saveState } from "./state.js";
import { addNetns, netnsExists } from "./system.js";
import { clientsOf, type LabOptions, type LabPlan, natNamespaceOf, planTopology, vmOf } from "./topology.js";

export type Say = (line: string) => void;

/** project commands run at once while building (each is a Node start-up; the store lock orders saves) */
const PARALLEL = 4;

/** Picks a domid block whose vif/NAT-namespace names are free on this host (concurrent labs). */
function pickDomidBase(count: number): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = randomInt(1, 250) * 128;
    let free = true;
    for (let d = base; d <= base + count + 3; d++) if (netnsExists(natNamespaceOf(`vif${d}.0`))) free = false;
    if (free) return base;
  }
  throw new SystemError("Cannot pick domids for the lab: every block tried has NAT namespaces in use");
}

export function initialState(plan: LabPlan): LabState {
  return {
    version: 1,
    ...plan,
    options: { ...plan.options },
    vms: plan.vms.map((v) => ({ ...v, features: { ...v.features } })),
    namespaces: [],
    natNamespaces: [],
    processes: [],
    nativeIps: {},
    phase: "building",
    problems: [],
  };
}

async function step(state: LabState, say: Say, what: string, action: () => Promise<void>): Promise<boolean> {
  const started = Date.now();
  try {
    await action();
    say(`  built ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return true;
  } catch (error) {
    const reason = `${what}: ${describeError(error)}`;
    state.problems.push(reason);
    saveState(state);
    say(`  FAILED ${reason}`);
    return false;
  }
}

export async function up(options: LabOptions, say: Say): Promise<LabState> {
  checkHost();
  const existing = loadState(options.dir);
  if (existing !== undefined) {
    throw new SystemError(
      `Cannot build a lab in "${options.dir}": lab ${existing.id} is there already; run "qubes-fakeip-lab down --dir ${options.dir}" first`,
    );
  }
  const plan = planTopology(options, randomBytes(3).toString("hex"), pickDomidBase(options.clients + 1));
  const state = initialState(plan);
  for (const dir of [state.dir, state.runDir, state.logDir, state.agentStateDir, join(state.dir, "pids")])
    mkdirSync(dir, { recursive: true });
  saveState(state);
  say(`lab ${state.id} in ${state.dir} (namespaces ${state.prefix}*)`);
  const proxy = vmOf(state, "proxyvm");
  const netvm = vmOf(state, "netvm");

  await step(state, say, "dom0 store (qvm-create, qvm-prefs, qvm-features)", async () => {
    const [base = [], ...perClient] = planDom0Commands(state);
    for (const c of base) await runDom0(state, c.command, c.args);
    await mapLimit(perClient, PARALLEL, async (group) => {
      for (const c of group) await runDom0(state, c.command, c.args);
    });
    const ips = await readNativeIps(state);
    for (const vm of state.vms) {
      const ip = ips.get(vm.name);
      if (ip === undefined) throw new SystemError(`Cannot find the native IP of "${vm.name}" in qvm-ls`);
      state.nativeIps[vm.name] = ip;
    }
    saveState(state);
  });
  await step(state, say, "network namespaces and vifs", async () => {
    for (const vm of state.vms) {
      recordBefore(state, "namespaces", vm.ns);
      await addNetns(vm.ns);
    }
    await addVif(proxy, netvm.ns);
    await enableForwarding(proxy.ns);
    for (const vm of clientsOf(state)) {
      recordBefore(state, "natNamespaces", natNamespaceOf(vm.vif));
      await addVif(vm, proxy.ns);
    }
  });
  await step(state, say, "sys-net routes and test addresses", () => wireNetVm(state, state.nativeIps));
  await step(state, say, "test server in sys-net", () => startServer(state));
  const dbs = await step(state, say, "one qubesdb-daemon per VM", () => startQubesDbs(state));
  const published =
    dbs && (await step(state, say, "dom0 publishing (qubes-fakeip-dom0 serve)", () => startDom0(state)));
  if (published)
    await step(state, say, "VMs' own network set-up from their QubesDB", () => startGuests(state));
  const agent = await step(state, say, "agent in sys-firewall under the lab's supervisor", () =>
    startAgent(state),
  );
  if (agent) {
    await step(state, say, "vif hotplug for every client", async () => {
      await mapLimit(clientsOf(state), PARALLEL, (vm) => plugVif(state, vm.name, "online"));
    });
  }
  state.phase = state.problems.length === 0 ? "up" : "failed";
  saveState(state);
  return state;
}

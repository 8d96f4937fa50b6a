/**
 * The lab's long-lived processes, each started detached and recorded before
 * it starts: one QubesDB daemon per VM, dom0's publisher, the test server,
 * the VMs' network set-up, the agent under its supervisor; and the vif
 * hotplug calls the lab makes in Xen's place.
 */
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { SystemError } from "../../shared/errors.js";
import { dom0Env } from "./dom0.js";
import { readKey } from "./qubesdb.js";
import { type LabState, recordBefore } from "./state.js";
import { ipJsonIn, runIn, spawnDetached, waitUntil } from "./system.js";
import { nodeCommand } from "./tools.js";
import { SERVER_IP, VM_MAC, vmOf } from "./topology.js";

function pidFile(state: LabState, name: string): string {
  return join(state.dir, "pids", `${name}.pid`);
}

function logFile(state: LabState, name: string): string {
  return join(state.logDir, `${name}.log`);
}

/** Starts a detached process, recorded before it starts. */
function startProcess(
  state: LabState,
  name: string,
  spec: { ns?: string; file: string; args: readonly string[]; env?: NodeJS.ProcessEnv },
): number {
  const file = pidFile(state, name);
  recordBefore(state, "processes", { name, pidFile: file });
  return spawnDetached({ ...spec, logFile: logFile(state, name), pidFile: file });
}

function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/**
 * How long to wait for something every VM has: a base plus a share per VM,
 * since a hundred Node processes starting at once on two cores take a while.
 */
function budget(state: LabState, baseMs: number): number {
  return baseMs + 300 * state.vms.length;
}

export async function startQubesDbs(state: LabState): Promise<void> {
  const [node, daemon] = nodeCommand("qubesdb-daemon");
  for (const vm of state.vms) {
    startProcess(state, `qubesdb-${vm.name}`, {
      file: node,
      args: [daemon, "--socket", vm.qubesdbSocket, "--name", vm.name],
    });
  }
  for (const vm of state.vms) {
    await waitUntil(
      `the QubesDB of ${vm.name} (${vm.qubesdbSocket})`,
      () => acceptsConnections(vm.qubesdbSocket),
      budget(state, 5000),
    );
  }
}

export async function startDom0(state: LabState): Promise<void> {
  const [node, dom0] = nodeCommand("qubes-fakeip-dom0");
  startProcess(state, "dom0", {
    file: node,
    args: [dom0, "serve", "--qubes-dir", state.qubesDir],
    env: dom0Env(state),
  });
  for (const vm of state.vms) {
    // A VM without a netvm (sys-net) gets no /qubes-ip, as in Qubes.
    const key = vm.role === "netvm" ? "/qubes-netvm-network" : "/qubes-ip";
    await waitUntil(
      `dom0 to publish ${key} of ${vm.name}`,
      () => readKey(vm.qubesdbSocket, key),
      budget(state, 8000),
      50,
    );
  }
}

export async function startServer(state: LabState): Promise<void> {
  const [node, server] = nodeCommand("test-server");
  startProcess(state, "test-server", {
    ns: vmOf(state, "netvm").ns,
    file: node,
    args: [server, "--log", state.serverLog, "--address", SERVER_IP],
  });
  await waitUntil(
    "the test server to listen",
    () => existsSync(state.serverLog) && readFileSync(state.serverLog, "utf8").includes('"listening"'),
    5000,
  );
}

export async function startGuests(state: LabState): Promise<void> {
  const [node, guest] = nodeCommand("guest");
  startProcess(state, "guest-network", { file: node, args: [guest, "--dir", state.dir] });
  for (const vm of state.vms.filter((v) => v.role !== "netvm")) {
    await waitUntil(
      `eth0 of ${vm.name} to be configured from its QubesDB`,
      async () => {
        const links = (await ipJsonIn(vm.ns, ["-4", "addr", "show", "dev", "eth0"])) as Array<{
          addr_info?: unknown[];
        }>;
        return (links[0]?.addr_info?.length ?? 0) > 0;
      },
      budget(state, 8000),
      50,
    );
  }
}

export function agentArgs(state: LabState): string[] {
  return [
    "--qubesdb-socket",
    vmOf(state, "proxyvm").qubesdbSocket,
    "--control-socket",
    state.agentControlSocket,
    "--state-dir",
    state.agentStateDir,
  ];
}

export async function startAgent(state: LabState): Promise<void> {
  const [node, agent] = nodeCommand("qubes-fakeip-agent");
  const [, supervisor] = nodeCommand("supervisor");
  const proxy = vmOf(state, "proxyvm");
  const childPid = pidFile(state, "agent");
  recordBefore(state, "processes", { name: "agent", pidFile: childPid });
  startProcess(state, "agent-supervisor", {
    file: node,
    args: [
      supervisor,
      "--child-pid-file",
      childPid,
      "--",
      "nsenter",
      `--net=/run/netns/${proxy.ns}`,
      node,
      agent,
      ...agentArgs(state),
    ],
  });
  await waitUntil(
    "the agent's control socket",
    () => acceptsConnections(state.agentControlSocket),
    10_000,
    50,
  );
}

/** Plays Xen: tells the agent each client's vif came up, with its native IP and MAC. */
export async function plugVif(state: LabState, vmName: string, action: "online" | "offline"): Promise<void> {
  const [node, agent] = nodeCommand("qubes-fakeip-agent");
  const vm = state.vms.find((v) => v.name === vmName);
  const ip = state.nativeIps[vmName];
  if (vm === undefined || ip === undefined)
    throw new SystemError(
      `Cannot plug the vif of "${vmName}": its native IP is unknown (dom0 store missing)`,
    );
  await runIn(vmOf(state, "proxyvm").ns, node, [
    agent,
    ...agentArgs(state),
    "vif",
    action,
    vm.vif,
    "--ip",
    ip,
    "--mac",
    VM_MAC,
  ]);
}

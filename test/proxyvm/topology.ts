/**
 * A ProxyVM in network namespaces for the agent's integration tests: the
 * ProxyVM namespace with an uplink to an upstream namespace (a TCP server
 * that answers with the peer's address), one namespace per VM whose `eth0`
 * (00:16:3e:5e:6c:00) is the peer of `vifK.0` (fe:ff:ff:ff:ff:ff) in the
 * ProxyVM, a real QubesDB daemon, and the built agent. Everything is named
 * uniquely and removed in teardown, NAT namespaces included (their names are
 * host-wide, so every topology draws its own domids).
 */
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import {
  createNetns,
  createVethPair,
  inNetns,
  ipJson,
  removeNetns,
  spawnInNetns,
  uniqueName,
  waitFor,
} from "../helpers/netns.js";
import { startTestDaemon, type TestDaemon } from "../helpers/qubesdb.js";

export const AGENT_JS = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../dist/proxyvm/cli/qubes-fakeip-agent.js",
);
export const VM_MAC = "00:16:3e:5e:6c:00";
export const VIF_MAC = "fe:ff:ff:ff:ff:ff";
/** the ProxyVM's address for its clients (`/qubes-netvm-gateway`) */
export const GATEWAY = "10.137.0.1";
export const GATEWAY6 = "fd09:24ef:4179::a89:1";
export const UPSTREAM = "198.51.100.2";
export const UPSTREAM6 = "2001:db8:1::2";
export const SERVER_PORT = 7007;

type Tap = { teardown(fn: () => unknown): void };

export interface VmSpec {
  native: string;
  native6?: string;
  /** what the VM configures on eth0 (visible when faked, else native) */
  address?: string;
  gatewayOfVm?: string;
  address6?: string;
  gateway6OfVm?: string;
}

export interface Vm {
  ns: string;
  vif: string;
  spec: VmSpec;
}

export interface Topology {
  proxy: string;
  upstream: string;
  db: TestDaemon;
  stateDir: string;
  controlSocket: string;
  domidBase: number;
  vms: Vm[];
  addVm(spec: VmSpec): Promise<Vm>;
  /** `qubes-fakeip-agent [globals] ARGS` inside the ProxyVM namespace */
  agent(
    args: string[],
    options?: { reject?: boolean },
  ): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  startDaemon(): Promise<{
    stop(signal?: NodeJS.Signals): Promise<void>;
    signal(signal: NodeJS.Signals): void;
    log(): string;
  }>;
  write(key: string, value: string): Promise<void>;
}

const TCP_SERVER = `
const net = require("node:net");
for (const host of ["0.0.0.0", "::"]) {
  net.createServer((s) => { s.end(s.remoteAddress.replace(/^::ffff:/, "") + "\\n"); s.on("error", () => {}); })
    .listen({ host, port: ${SERVER_PORT}, ipv6Only: host === "::" });
}`;

/** Builds the ProxyVM, the upstream and the QubesDB daemon (VMs come with `addVm`). */
export async function createTopology(t: Tap): Promise<Topology> {
  const proxy = await createNetns(t, uniqueName("fpx"));
  const upstream = await createNetns(t, uniqueName("fup"));
  await createVethPair({ ns: proxy, name: "uplink" }, { ns: upstream, name: "eth0" });
  await execa("ip", ["-n", proxy, "addr", "add", "198.51.100.1/24", "dev", "uplink"]);
  await execa("ip", ["-n", proxy, "addr", "add", "2001:db8:1::1/64", "dev", "uplink", "nodad"]);
  await execa("ip", ["-n", upstream, "addr", "add", `${UPSTREAM}/24`, "dev", "eth0"]);
  await execa("ip", ["-n", upstream, "addr", "add", `${UPSTREAM6}/64`, "dev", "eth0", "nodad"]);
  await execa("ip", ["-n", upstream, "route", "add", "10.137.0.0/16", "via", "198.51.100.1"]);
  await execa("ip", ["-n", upstream, "route", "add", "fd09:24ef:4179::/48", "via", "2001:db8:1::1"]);
  const server = spawnInNetns(t, upstream, process.execPath, ["-e", TCP_SERVER]);
  server.stderr?.resume();
  server.stdout?.resume();

  const db = await startTestDaemon(t);
  const client = await db.client();
  await client.write("/qubes-netvm-gateway", GATEWAY);
  await client.write("/qubes-netvm-gateway6", GATEWAY6);
  await client.write("/connected-ips", "");
  await client.write("/connected-ips6", "");
  const stateDir = mkdtempSync(join(tmpdir(), `fakeip-agent-${process.pid}-`));
  const controlSocket = join(stateDir, "agent.sock");
  // Domids of this topology: a random block, so NAT namespace names never collide across parallel tests.
  const domidBase = randomInt(100, 32000);
  const vms: Vm[] = [];
  t.teardown(async () => {
    for (const vm of vms) await removeNetns(`${vm.vif}-nat`);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const globals = ["--qubesdb-socket", db.socket, "--control-socket", controlSocket, "--state-dir", stateDir];
  await waitFor(async () =>
    String((await inNetns(upstream, "ss", ["-ltn"])).stdout).includes(`:${SERVER_PORT}`),
  );

  const topology: Topology = {
    proxy,
    upstream,
    db,
    stateDir,
    controlSocket,
    domidBase,
    vms,
    async addVm(spec) {
      const vif = `vif${domidBase + vms.length}.0`;
      const ns = await createNetns(t, uniqueName("fvm"));
      const vm = { ns, vif, spec };
      vms.push(vm);
      // dom0 publishes every VM's firewall (here: everything allowed); the
      // firewall component blocks a VM it has no rules for
      for (const n of [spec.native, spec.native6]) {
        if (n === undefined) continue;
        await client.write(`/qubes-firewall/${n}/policy`, "drop");
        await client.write(`/qubes-firewall/${n}/0000`, "action=accept");
        await client.write(`/qubes-firewall/${n}`, "");
      }
      await createVethPair({ ns, name: "eth0", mac: VM_MAC }, { ns: proxy, name: vif, mac: VIF_MAC });
      // like Qubes' guest network set-up: address/32, on-link route to the gateway, default via it
      const address = spec.address ?? spec.native;
      const gateway = spec.gatewayOfVm ?? GATEWAY;
      await execa("ip", ["-n", ns, "addr", "add", `${address}/32`, "dev", "eth0"]);
      await execa("ip", ["-n", ns, "route", "add", gateway, "dev", "eth0"]);
      await execa("ip", ["-n", ns, "route", "add", "default", "via", gateway]);
      if (spec.address6 !== undefined) {
        await execa("ip", ["-n", ns, "addr", "add", `${spec.address6}/128`, "dev", "eth0", "nodad"]);
        const gateway6 = spec.gateway6OfVm ?? GATEWAY6;
        await execa("ip", ["-n", ns, "route", "add", gateway6, "dev", "eth0"]);
        await execa("ip", ["-n", ns, "route", "add", "default", "via", gateway6]);
      }
      return vm;
    },
    async agent(args, options = {}) {
      const result = await inNetns(proxy, process.execPath, [AGENT_JS, ...globals, ...args], {
        reject: options.reject ?? true,
        env: { QUBES_FAKEIP_LOG: "warn" },
      });
      return {
        exitCode: result.exitCode ?? -1,
        stdout: String(result.stdout),
        stderr: String(result.stderr),
      };
    },
    async startDaemon() {
      const child = spawnInNetns(t, proxy, process.execPath, [AGENT_JS, ...globals]);
      let log = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        log += chunk.toString();
      });
      child.stdout?.resume();
      const ready = await waitFor(() => log.includes("INFO ready") || child.exitCode !== null, 15_000);
      if (!ready || child.exitCode !== null) throw new Error(`Cannot start the agent: ${log}`);
      return {
        log: () => log,
        signal: (signal: NodeJS.Signals) => void child.kill(signal),
        async stop(signal: NodeJS.Signals = "SIGTERM") {
          if (child.exitCode !== null || child.signalCode !== null) return;
          await new Promise<void>((r) => {
            child.once("exit", () => r());
            child.kill(signal);
          });
        },
      };
    },
    async write(key, value) {
      await client.write(key, value);
    },
  };
  return topology;
}

/** Connects from `ns` to the upstream server; resolves with the address the server saw, or "" on failure. */
export async function askUpstream(
  ns: string,
  host = UPSTREAM,
  options: { localAddress?: string; timeoutMs?: number } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const local =
    options.localAddress === undefined ? "" : `,localAddress:${JSON.stringify(options.localAddress)}`;
  const script = `const s=require("node:net").connect({host:${JSON.stringify(host)},port:${SERVER_PORT}${local}});let d="";s.on("data",(c)=>d+=c);s.on("end",()=>{process.stdout.write(d.trim());process.exit(0)});s.on("error",()=>process.exit(3));setTimeout(()=>process.exit(4),${timeoutMs});`;
  const result = await inNetns(ns, process.execPath, ["-e", script], { reject: false });
  return result.exitCode === 0 ? String(result.stdout) : "";
}

/** Adds a VM with a fake IP (QubesDB keys written first, like dom0) and runs the hook for it. */
export async function addFakeVm(
  topo: Topology,
  native: string,
  visible: string,
  gateway: string,
): Promise<Vm> {
  const vm = await topo.addVm({ native, address: visible, gatewayOfVm: gateway });
  await topo.write(`/mapped-ip/${native}/visible-ip`, visible);
  await topo.write(`/mapped-ip/${native}/visible-gateway`, gateway);
  await topo.agent(["vif", "online", vm.vif, "--ip", native, "--mac", VM_MAC]);
  return vm;
}

/** The IPv4 addresses on `dev` in `ns`. */
export async function addressesOf(ns: string, dev: string): Promise<string[]> {
  const links = (await ipJson(ns, ["addr", "show", "dev", dev])) as {
    addr_info: { local: string; family: string }[];
  }[];
  return (links[0]?.addr_info ?? []).filter((a) => a.family === "inet").map((a) => a.local);
}

/** `true` when one ping from `ns` to `address` is answered (1 s). */
export async function pings(ns: string, address: string, extra: string[] = []): Promise<boolean> {
  const result = await inNetns(ns, "ping", ["-c", "1", "-W", "0.6", ...extra, address], { reject: false });
  return result.exitCode === 0;
}

/** The interface index of `dev` in `ns`, or undefined when it does not exist (re-creation shows as a new index). */
export async function linkIndex(ns: string, dev: string): Promise<number | undefined> {
  const links = (await ipJson(ns, ["link", "show", "dev", dev])) as { ifindex: number }[];
  return links[0]?.ifindex;
}

/** `qubes-fakeip-agent status --json` of the topology's agent, parsed. */
export async function agentStatus(
  topo: Topology,
): Promise<{ running: boolean; vifs: Record<string, Record<string, unknown>> }> {
  return JSON.parse((await topo.agent(["status", "--json"])).stdout);
}

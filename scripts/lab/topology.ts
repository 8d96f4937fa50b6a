/**
 * The lab's plan: every name, address, path and domid of one run, computed
 * from the options and the run id alone (no I/O), so `up` applies it and
 * `down` can find everything again from `lab.json`.
 */
import { join } from "node:path";

/** Xen's MACs (DESIGN.md "The lab"): every vif, and every VM's eth0. */
export const VIF_MAC = "fe:ff:ff:ff:ff:ff";
export const VM_MAC = "00:16:3e:5e:6c:00";

/**
 * The test server's addresses in sys-net (TEST-NET-2/3, RFC 5737): the echo/HTTP
 * server, an address beyond a router hop (TTL exceeded) and an unreachable net.
 */
export const SERVER_IP = "198.51.100.1";
export const FAR_NET = "203.0.113.0/24";
export const FAR_IP = "203.0.113.7";
export const FAR_ROUTER_IP = "203.0.113.254";
export const UNREACHABLE_NET = "192.0.2.0/24";
export const UNREACHABLE_IP = "192.0.2.9";
export const ECHO_PORT = 7;
export const HTTP_PORT = 80;
/** a UDP port nothing listens on in sys-net: the source of port-unreachable errors */
export const CLOSED_UDP_PORT = 9;

/** Whonix's gateway/workstation addresses and its /18 (Whonix `/etc/network/interfaces.d`). */
export const DEFAULT_FAKE_IP = "10.152.152.11";
export const DEFAULT_FAKE_GATEWAY = "10.152.152.10";
export const DEFAULT_FAKE_NETMASK = "255.255.192.0";
export const DEFAULT_CLIENTS = 3;
export const DEFAULT_DIR = "/run/qubes-fakeip-lab";

export const TEMPLATE = "debian-12";
export const NETVM = "sys-net";
export const PROXYVM = "sys-firewall";
export const PLAIN_CLIENT = "work";

export interface LabOptions {
  readonly dir: string;
  readonly clients: number;
  readonly fakeIp: string;
  readonly fakeGateway: string;
  readonly fakeNetmask: string;
}

export type VmRole = "netvm" | "proxyvm" | "client";

export interface PlannedVm {
  readonly name: string;
  readonly role: VmRole;
  readonly ns: string;
  readonly domid: number;
  /** the vif in the upstream VM's namespace: `vif<domid>.0` (Xen's naming) */
  readonly vif: string;
  /** features the lab sets with qvm-features (fake-IP clients only) */
  readonly features: Readonly<Record<string, string>>;
  readonly qubesdbSocket: string;
}

export interface LabPlan {
  readonly id: string;
  readonly prefix: string;
  readonly dir: string;
  readonly options: LabOptions;
  readonly qubesDir: string;
  readonly runDir: string;
  readonly logDir: string;
  readonly agentStateDir: string;
  readonly agentControlSocket: string;
  readonly serverLog: string;
  readonly vms: readonly PlannedVm[];
}

/** The ProxyVM agent's per-VM NAT namespace for a vif (named by the agent, not prefixed). */
export function natNamespaceOf(vif: string): string {
  return `${vif}-nat`;
}

/**
 * Plans a lab. `id` is a short random hex string, `domidBase` a random
 * multiple of 128: vif (and so NAT namespace) names are global on the host,
 * and concurrent labs must not share one.
 */
export function planTopology(options: LabOptions, id: string, domidBase: number): LabPlan {
  const prefix = `qfl-${id}-`;
  const runDir = join(options.dir, "run");
  const vm = (
    name: string,
    role: VmRole,
    domid: number,
    features: Record<string, string> = {},
  ): PlannedVm => ({
    name,
    role,
    ns: `${prefix}${name}`,
    domid,
    vif: `vif${domid}.0`,
    features,
    qubesdbSocket: join(runDir, `qubesdb.${name}.sock`),
  });
  const fake = {
    "net.fake-ip": options.fakeIp,
    "net.fake-gateway": options.fakeGateway,
    "net.fake-netmask": options.fakeNetmask,
  };
  const clients: PlannedVm[] = [];
  for (let i = 1; i <= options.clients; i++) clients.push(vm(`anon-${i}`, "client", domidBase + 2 + i, fake));
  clients.push(vm(PLAIN_CLIENT, "client", domidBase + 2 + options.clients + 1));
  return {
    id,
    prefix,
    dir: options.dir,
    options,
    qubesDir: join(options.dir, "qubes"),
    runDir,
    logDir: join(options.dir, "log"),
    agentStateDir: join(options.dir, "agent"),
    agentControlSocket: join(runDir, "agent.sock"),
    serverLog: join(options.dir, "log", "test-server.jsonl"),
    vms: [vm(NETVM, "netvm", domidBase + 1), vm(PROXYVM, "proxyvm", domidBase + 2), ...clients],
  };
}

export function clientsOf(plan: Pick<LabPlan, "vms">): PlannedVm[] {
  return plan.vms.filter((v) => v.role === "client");
}

export function vmOf(plan: Pick<LabPlan, "vms">, role: "netvm" | "proxyvm"): PlannedVm {
  const found = plan.vms.find((v) => v.role === role);
  if (found === undefined) throw new Error(`Cannot find the ${role} in the lab plan: the plan has none`);
  return found;
}

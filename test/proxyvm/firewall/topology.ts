/**
 * client ── vif1.0 │ router │ up0 ── server: three namespaces of one test,
 * removed by name in teardown. The client holds several "VM" addresses (one
 * per firewall key), the router is where the firewall's nft runs, the server
 * answers TCP/UDP echo and ICMP on TEST-NET and the virtual DNS addresses.
 */
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { createNetns, createVethPair, inNetns, spawnInNetns, uniqueName } from "../../helpers/netns.js";

export const PROBE_PY = join(dirname(fileURLToPath(import.meta.url)), "probe.py");

export const VM1 = "10.137.0.12";
export const VM2 = "10.137.0.13";
export const VM3 = "10.137.0.14";
export const VM6 = "fd09:24ef:4179::a89:c";
export const SERVER = "198.51.100.1";
export const SERVER2 = "198.51.100.2";
export const FAR = "203.0.113.5";
export const SERVER6 = "2001:db8:1::1";
export const FAR6 = "2001:db8:2::5";
export const DNS1 = "10.139.1.1";
export const DNS2 = "10.139.1.2";
export const TCP_PORTS = [22, 53, 80, 443, 8080];
export const UDP_PORTS = [53, 5000, 5001];

export interface Topology {
  client: string;
  router: string;
  server: string;
  serverProcess: ChildProcess;
}

type Tap = { teardown(fn: () => unknown): void };

async function run(ns: string, args: string[]): Promise<void> {
  await execa("ip", ["-n", ns, ...args]);
}

export async function createTopology(t: Tap): Promise<Topology> {
  const client = await createNetns(t, uniqueName("fwc"));
  const router = await createNetns(t, uniqueName("fwr"));
  const server = await createNetns(t, uniqueName("fws"));
  await createVethPair({ ns: client, name: "eth0" }, { ns: router, name: "vif1.0" });
  await createVethPair({ ns: router, name: "up0" }, { ns: server, name: "eth0" });
  for (const address of [`${VM1}/24`, `${VM2}/24`, `${VM3}/24`])
    await run(client, ["addr", "add", address, "dev", "eth0"]);
  await run(client, ["addr", "add", `${VM6}/64`, "dev", "eth0", "nodad"]);
  await run(client, ["route", "add", "default", "via", "10.137.0.1"]);
  await run(client, ["-6", "route", "add", "default", "via", "fd09:24ef:4179::1"]);
  await run(router, ["addr", "add", "10.137.0.1/24", "dev", "vif1.0"]);
  await run(router, ["addr", "add", "fd09:24ef:4179::1/64", "dev", "vif1.0", "nodad"]);
  await run(router, ["addr", "add", "198.51.100.254/24", "dev", "up0"]);
  await run(router, ["addr", "add", "2001:db8:1::fe/64", "dev", "up0", "nodad"]);
  await run(router, ["route", "add", "203.0.113.0/24", "via", SERVER]);
  await run(router, ["route", "add", "10.139.1.0/24", "via", SERVER]);
  await run(router, ["-6", "route", "add", "2001:db8:2::/64", "via", SERVER6]);
  for (const address of [`${SERVER}/24`, `${SERVER2}/24`])
    await run(server, ["addr", "add", address, "dev", "eth0"]);
  for (const address of [`${FAR}/32`, `${DNS1}/32`, `${DNS2}/32`])
    await run(server, ["addr", "add", address, "dev", "lo"]);
  await run(server, ["addr", "add", `${SERVER6}/64`, "dev", "eth0", "nodad"]);
  await run(server, ["addr", "add", `${FAR6}/128`, "dev", "lo"]);
  await run(server, ["route", "add", "default", "via", "198.51.100.254"]);
  await run(server, ["-6", "route", "add", "default", "via", "2001:db8:1::fe"]);
  await inNetns(router, "sysctl", [
    "-q",
    "-w",
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    // every rejected probe must get its ICMP error, not a rate-limited silence
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
  ]);
  const serverProcess = spawnInNetns(t, server, "python3", [
    PROBE_PY,
    "serve",
    "--tcp",
    TCP_PORTS.join(","),
    "--udp",
    UDP_PORTS.join(","),
    "--bind",
    [SERVER, SERVER2, FAR, DNS1, DNS2, SERVER6, FAR6].join(","),
  ]);
  await new Promise<void>((resolve, reject) => {
    serverProcess.stdout?.once("data", () => resolve());
    serverProcess.once("exit", (code) => reject(new Error(`probe server exited with ${code}`)));
  });
  return { client, router, server, serverProcess };
}

export type ProbeKind = "tcp" | "udp" | "icmp";
export interface Probe {
  kind: ProbeKind;
  src: string;
  dst: string;
  port?: number;
  type?: number;
  timeout?: number;
}

/** Runs probes from the client namespace; results in order ("ok", "admin-prohibited", "timeout", ...). */
export async function probe(ns: string, probes: readonly Probe[]): Promise<string[]> {
  const result = await inNetns(ns, "python3", [PROBE_PY, "probe", JSON.stringify(probes)]);
  return JSON.parse(String(result.stdout)) as string[];
}

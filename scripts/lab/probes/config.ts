/**
 * Probe 1: each client sees exactly its visible IP, netmask and gateway, and
 * its native IP appears nowhere in its configuration.
 */
import { prefixFromNetmask } from "../../../shared/net/ip.js";
import type { LabState } from "../state.js";
import { ipJsonIn } from "../system.js";
import { vmOf } from "../topology.js";
import { clients, nativeIp, type ProbeResult, probe } from "./context.js";

export interface Visible {
  readonly ip: string;
  readonly prefix: number;
  readonly gateway: string;
}

/** What a client should see: its fake address set, else its native IP /32 via the ProxyVM. */
export function expectedVisible(state: LabState, name: string): Visible {
  const features = state.vms.find((v) => v.name === name)?.features ?? {};
  const fakeIp = features["net.fake-ip"];
  if (fakeIp !== undefined) {
    return {
      ip: fakeIp,
      prefix: prefixFromNetmask(features["net.fake-netmask"] ?? "32"),
      gateway: features["net.fake-gateway"] ?? "",
    };
  }
  return { ip: nativeIp(state, name), prefix: 32, gateway: nativeIp(state, vmOf(state, "proxyvm").name) };
}

export interface SeenConfig {
  readonly addresses: string[];
  readonly gateway: string | undefined;
  /** the raw JSON of addr, route and neigh: searched for the native IP */
  readonly text: string;
}

export async function seenConfig(ns: string): Promise<SeenConfig> {
  const addr = (await ipJsonIn(ns, ["addr", "show"])) as Array<{
    ifname: string;
    addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
  }>;
  const route = (await ipJsonIn(ns, ["route", "show", "table", "all"])) as Array<{
    dst: string;
    gateway?: string;
  }>;
  const neigh = await ipJsonIn(ns, ["neigh", "show"]);
  const addresses = addr
    .filter((l) => l.ifname !== "lo")
    .flatMap((l) =>
      (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
    );
  const gateway = route.find((r) => r.dst === "default")?.gateway;
  return { addresses, gateway, text: JSON.stringify([addr, route, neigh]) };
}

export function describeSeen(seen: SeenConfig): string {
  return `${seen.addresses.join(",") || "no address"} gw ${seen.gateway ?? "none"}`;
}

export function probeConfig(state: LabState): Promise<ProbeResult> {
  return probe("each client sees exactly its visible IP, netmask and gateway", async () => {
    const parts: string[] = [];
    let ok = true;
    for (const client of clients(state)) {
      const want = expectedVisible(state, client.name);
      const native = nativeIp(state, client.name);
      const seen = await seenConfig(client.ns);
      const exact =
        seen.addresses.length === 1 &&
        seen.addresses[0] === `${want.ip}/${want.prefix}` &&
        seen.gateway === want.gateway;
      const leaks = want.ip !== native && seen.text.includes(`"${native}"`);
      ok &&= exact && !leaks;
      parts.push(
        `${client.name} sees ${describeSeen(seen)}${exact ? "" : ` (want ${want.ip}/${want.prefix} gw ${want.gateway})`}${leaks ? ` — native ${native} LEAKS into its config` : ""}`,
      );
    }
    return { ok, observed: parts.join("; ") };
  });
}

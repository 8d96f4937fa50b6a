/**
 * What a Qubes VM's own network set-up does with the keys dom0 published in
 * its QubesDB (qubes-core-agent `setup-ip`): the visible address with the
 * visible netmask on eth0, a host route to the gateway and a default route
 * via it. Pure: observed and desired in, `ip` argument lists out.
 */
import { prefixFromNetmask } from "../../shared/net/ip.js";

export const GUEST_IFACE = "eth0";
export const GUEST_KEYS = ["/qubes-ip", "/qubes-netmask", "/qubes-gateway"] as const;

export interface GuestConfig {
  readonly ip: string;
  readonly prefix: number;
  readonly gateway: string;
}

export interface ObservedGuest {
  /** IPv4 addresses on eth0 as `addr/prefix` */
  readonly addresses: readonly string[];
  /** gateway of the default route, if any */
  readonly defaultVia: string | undefined;
}

/** Reads the config from QubesDB values; `undefined` until dom0 published all three keys. */
export function guestConfigFrom(values: ReadonlyMap<string, string>): GuestConfig | undefined {
  const ip = values.get("/qubes-ip");
  const netmask = values.get("/qubes-netmask");
  const gateway = values.get("/qubes-gateway");
  if (!ip || !netmask || !gateway) return undefined;
  return { ip, prefix: prefixFromNetmask(netmask), gateway };
}

/** `ip` commands that turn `observed` into `desired` (empty when nothing changes). */
export function planGuestCommands(desired: GuestConfig, observed: ObservedGuest): string[][] {
  const want = `${desired.ip}/${desired.prefix}`;
  const commands: string[][] = [];
  for (const address of observed.addresses) {
    if (address !== want) commands.push(["addr", "del", address, "dev", GUEST_IFACE]);
  }
  if (!observed.addresses.includes(want)) commands.push(["addr", "add", want, "dev", GUEST_IFACE]);
  const routeChanged = observed.defaultVia !== desired.gateway || commands.length > 0;
  if (routeChanged) {
    // The gateway may lie outside the netmask (/32 in Qubes): a link-scope host
    // route to it first, then the default route via it (`onlink`, as Qubes does).
    commands.push(["route", "replace", desired.gateway, "dev", GUEST_IFACE, "scope", "link"]);
    commands.push(["route", "replace", "default", "via", desired.gateway, "dev", GUEST_IFACE, "onlink"]);
  }
  return commands;
}

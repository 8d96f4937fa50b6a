/**
 * Global options of `qubes-fakeip-agent`, validated and normalised in one
 * place (STYLE.md: execa); everything after this trusts them.
 */

import { InvalidInputError } from "../../shared/errors.js";
import { vifNameSchema } from "../../shared/keys.js";
import { isIPv4, isIPv6 } from "../../shared/net/ip.js";
import { DEFAULT_CONTROL_SOCKET } from "../sources/control-socket.js";
import { DEFAULT_STATE_DIR } from "../state.js";

export interface GlobalOptions {
  readonly qubesdbSocket?: string | undefined;
  readonly controlSocket: string;
  readonly stateDir: string;
  readonly dryRun: boolean;
  /** DNS servers for the firewall's `dsthost` rules (`--dns-server`, repeatable); the system's when empty */
  readonly dnsServers: readonly string[];
}

/**
 * Without `--state-dir`, an agent given its own `--control-socket` keeps its
 * state beside it (`PATH.state`): several agents on one host (the lab, tests)
 * must never share vif records, or one would adopt, and clean up, the
 * other's vifs.
 */
export function normaliseGlobalOptions(raw: Record<string, unknown>): GlobalOptions {
  const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
  const controlSocket = text(raw["controlSocket"]);
  const dnsServers = Array.isArray(raw["dnsServer"]) ? raw["dnsServer"].map(String) : [];
  for (const server of dnsServers) {
    if (!isIPv4(server) && !isIPv6(server)) {
      throw new InvalidInputError(`Cannot use DNS server "${server}": not an IPv4 or IPv6 address`);
    }
  }
  return {
    qubesdbSocket: text(raw["qubesdbSocket"]),
    controlSocket: controlSocket ?? DEFAULT_CONTROL_SOCKET,
    stateDir:
      text(raw["stateDir"]) ?? (controlSocket === undefined ? DEFAULT_STATE_DIR : `${controlSocket}.state`),
    dryRun: raw["dryRun"] === true,
    dnsServers,
  };
}

export interface VifArguments {
  readonly vif: string;
  readonly ip: string;
  readonly ip6?: string | undefined;
  readonly mac?: string | undefined;
}

/**
 * The hook's arguments. Only the vif name is checked here (it is the key; a
 * bad one cannot even be reported under its name). Addresses and MAC go to the
 * agent as given: invalid ones leave the vif blocked with the reason in
 * `status`, like invalid QubesDB values.
 */
export function parseVifArguments(
  vif: string,
  ips: readonly string[],
  mac: string | undefined,
): VifArguments {
  const name = vifNameSchema.safeParse(vif);
  if (!name.success) {
    throw new InvalidInputError(`Cannot handle vif "${vif}": ${name.error.issues[0]?.message ?? "invalid"}`);
  }
  // The first IPv4 and the first IPv6 address, as the reference's vif-route-qubes picks them.
  const ip = ips.find((value) => !value.includes(":")) ?? ips[0];
  if (ip === undefined) throw new InvalidInputError(`Cannot handle vif "${vif}": --ip is required`);
  const ip6 = ips.find((value) => value.includes(":") && value !== ip);
  for (const value of [ip, ip6, mac]) {
    if (value !== undefined && value.length > 64) {
      throw new InvalidInputError(
        `Cannot handle vif "${vif}" with "${value.slice(0, 64)}...": longer than 64 characters`,
      );
    }
  }
  return { vif, ip, ip6, mac };
}

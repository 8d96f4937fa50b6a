/**
 * Named network namespaces and `ip -batch`: the agent's one way to act inside
 * a NAT namespace. Node has no setns(2), so a netlink socket cannot be opened
 * in another namespace from this process; instead each change runs at most one
 * `ip -batch -` per namespace, which the kernel sees as one process doing all
 * steps (the reference spends a process per step).
 *
 * `ip netns add` inside a batch works only in the agent's own mount namespace:
 * `ip -n NS` gives itself a private mount namespace, where a namespace created
 * with `netns add` would lose its name on exit (DESIGN.md "The lab"). So
 * ProxyVM-side batches never use `-n`.
 */
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { execa } from "execa";
import { SystemError } from "../../shared/errors.js";

/** Where `ip netns` keeps named namespaces (iproute2's NETNS_RUN_DIR). */
export const NETNS_DIR = "/run/netns";

/** `true` when the named namespace exists. */
export function netnsExists(name: string): boolean {
  return existsSync(`${NETNS_DIR}/${name}`);
}

/** Names of all named namespaces. */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Runs `ip -batch -` (in `netns` when given, else here); stops at the first failing line. */
export async function runIpBatch(lines: readonly string[], netns?: string): Promise<void> {
  if (lines.length === 0) return;
  const args = netns === undefined ? ["-batch", "-"] : ["-n", netns, "-batch", "-"];
  const result = await execa("ip", args, { input: `${lines.join("\n")}\n`, reject: false });
  if (result.exitCode !== 0) {
    const where = netns === undefined ? "" : ` in netns "${netns}"`;
    const why = String(result.stderr).trim().replaceAll("\n", "; ");
    throw new SystemError(
      `Cannot run "ip -batch"${where}: ip exited with ${result.exitCode ?? result.signal}: ${why}`,
    );
  }
}

/** Writes a sysctl of the agent's own namespace (`path` below /proc/sys, e.g. `net/ipv4/ip_forward`). */
export function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${path}`, value);
  } catch (error) {
    throw new SystemError(
      `Cannot set sysctl "${path.replaceAll("/", ".")}" to "${value}": ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Named network namespaces, without a process per step: created and deleted
 * in-process through the native helper (native.ts), and joined by the main
 * thread just long enough to create a socket there (`withNetns`), so the
 * agent talks netlink to every NAT namespace directly (the reference spends
 * 15 processes per VM; `ip -n NS` alone costs 5-10 ms).
 *
 * Names live in the agent's own mount namespace (/run/netns, made a shared
 * mount like iproute2 does), so `ip netns` sees them.
 */
import { closeSync, existsSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { SystemError } from "../../shared/errors.js";
import { nativeNetns } from "./native.js";

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

/** A name is a path component under /run/netns: never empty, `.`/`..` or with a slash. */
function netnsPath(name: string): string {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new SystemError(`Invalid network namespace name "${name}"`);
  }
  return `${NETNS_DIR}/${name}`;
}

/**
 * `ip netns add NAME`, in-process. Fails when the name exists. `sysctls`
 * (e.g. `["net/ipv6/conf/default/addr_gen_mode", "1"]`) are written inside the
 * new namespace before anything can enter it; a sysctl the kernel lacks is skipped.
 */
export async function createNetns(
  name: string,
  sysctls: readonly (readonly [string, string])[] = [],
): Promise<void> {
  try {
    await nativeNetns().createNetns(netnsPath(name), sysctls);
  } catch (error) {
    throw new SystemError((error as Error).message, { cause: error });
  }
}

/** `ip netns del NAME`, in-process: the kernel destroys the namespace (and its links) once unused. */
export function deleteNetns(name: string): void {
  try {
    nativeNetns().deleteNetns(netnsPath(name));
  } catch (error) {
    throw new SystemError((error as Error).message, { cause: error });
  }
}

/** Opens the named namespace (a file descriptor for setns and IFLA_NET_NS_FD); close it with `closeSync`. */
export function openNetnsFd(name: string): number {
  try {
    return openSync(netnsPath(name), "r");
  } catch (error) {
    throw new SystemError(`Cannot open network namespace "${name}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

let ownFd: number | undefined;

/** The agent's own network namespace (opened once, before any switch; never closed). */
export function ownNetnsFd(): number {
  ownFd ??= openSync("/proc/thread-self/ns/net", "r");
  return ownFd;
}

/**
 * Runs the synchronous `make` with the main thread inside the namespace of
 * `fd` (no switch when undefined), and always returns to the agent's own.
 * Only for creating sockets: nothing else can run meanwhile (`make` is
 * synchronous), and a socket keeps the namespace it was created in.
 */
export function withNetns<T>(fd: number | undefined, make: () => T): T {
  if (fd === undefined) return make();
  const own = ownNetnsFd();
  const native = nativeNetns();
  native.setns(fd);
  try {
    return make();
  } finally {
    try {
      native.setns(own);
    } catch (error) {
      // Staying here would put every later socket in the wrong namespace: stop
      // (systemd restarts the agent; the data plane is untouched meanwhile).
      process.stderr.write(`FATAL cannot return to the agent's network namespace: ${String(error)}\n`);
      process.abort();
    }
  }
}

export { closeSync as closeNetnsFd };

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

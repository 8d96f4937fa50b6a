/**
 * Everything the NAT applier does to the kernel, behind one interface: the
 * real one and a dry-run one that prints each mutation, as the `ip`/`nft`
 * command doing the same, instead of performing it (`--dry-run`).
 * Observations (reading links and namespaces) are real in both: a plan is only
 * meaningful against what exists.
 *
 * The real one runs no process: netlink for links, addresses, routes and
 * neighbours (in a NAT namespace through sockets opened inside it), the
 * native helper for namespaces and for nft transactions (libnftables), and
 * /proc/sys. Each process it replaced cost 5-10 ms per step (issue 5's
 * bring-up budget is 1.3x one link move, ~25-30 ms, for everything).
 */
import { statSync } from "node:fs";
import { SystemError } from "../../shared/errors.js";
import { nativeNetns } from "../system/native.js";
import { type LinkInfo, type NetlinkAdapter, openNetlink, watchLinkRemoval } from "../system/netlink.js";
import {
  closeNetnsFd,
  createNetns,
  deleteNetns,
  listNetns,
  netnsExists,
  openNetnsFd,
  ownNetnsFd,
  writeSysctl,
} from "../system/netns.js";
import { listNftJson } from "../system/nft.js";
import { ICMP_ERRORS4, ICMP_ERRORS6, ICMP_INNER_CHAIN, INNER4, INNER6, type InnerMaps } from "./antispoof.js";
import { encodeIcmpInnerBatch } from "./icmp-inner.js";
import { ANTISPOOF_TABLE, NAT_TABLE, ownerMark, XEN_VIF_MAC } from "./names.js";
import {
  type InsideOp,
  NETNS_SYSCTLS,
  readNatTableMark,
  renderInsideOp,
  renderStructOp,
  type StructOp,
} from "./plan.js";

const ICMP_SETS = { errors4: ICMP_ERRORS4, errors6: ICMP_ERRORS6, inner4: INNER4, inner6: INNER6 };

export interface NatSystem {
  getLink(name: string): Promise<LinkInfo | undefined>;
  listLinks(): Promise<LinkInfo[]>;
  netnsExists(name: string): boolean;
  listNetns(): string[];
  /** Performs structural operations in order; stops at the first failure. */
  structure(ops: readonly StructOp[]): Promise<void>;
  /** Performs operations inside the NAT namespace `netns` in order; stops at the first failure. */
  inside(netns: string, ops: readonly InsideOp[]): Promise<void>;
  /** One nft transaction, in the named namespace or the ProxyVM. */
  nft(script: string, netns?: string): Promise<void>;
  /** The mark of the NAT table in `netns` (plan.ts `natTableMark`); undefined when there is none. */
  natTableMark(netns: string): Promise<string | undefined>;
  sysctl(path: string, value: string): void;
  setLinkUp(link: LinkInfo): Promise<void>;
  replaceAddress(link: LinkInfo, address: string, prefix: number): Promise<void>;
  replaceRoute(link: LinkInfo, dst: string, prefix: number, metric: number): Promise<void>;
  replaceNeighbour(link: LinkInfo, address: string, mac: string): Promise<void>;
  removeRoute(link: LinkInfo, dst: string, prefix: number): Promise<void>;
  removeNeighbour(link: LinkInfo, address: string): Promise<void>;
  removeAddress(link: LinkInfo, address: string, prefix: number): Promise<void>;
  /** the ICMP inner-rewrite maps as the kernel holds them (empty when the table does not exist) */
  readInnerMaps(): Promise<InnerMaps>;
  /** appends the ICMP inner-rewrite rules (icmp-inner.ts) to the anti-spoofing table's `icmp-inner` chain */
  addIcmpInnerRules(): Promise<void>;
  /**
   * Calls `onGone` once when the link `dev` leaves the namespace `netns`
   * (see netlink.ts `watchLinkRemoval`); close the watch before deleting it.
   */
  watchLinkRemoval(netns: string, dev: string, onGone: () => void): { close(): void };
  /**
   * Exercises every in-process path of a bring-up (namespace, veth, move,
   * inside operations, a NAT table) on two throwaway namespaces, then removes
   * them (see AgentComponent.warmUp).
   */
  warmUp(): Promise<void>;
  /** this ProxyVM's owner mark for its NAT namespaces (names.ts `ownerMark`) */
  readonly owner: string;
  /** the owner mark of a NAT namespace (its loopback's alias); undefined when it has none or cannot be read */
  namespaceOwner(netns: string): Promise<string | undefined>;
  /** the agent's pid: `ip -n NS link set DEV netns PID` names the ProxyVM with it (dry-run text) */
  readonly pid: number;
  /** `true` when mutations are only printed: links planned but not created are then assumed */
  readonly dryRun: boolean;
}

async function readMap(name: string): Promise<[string, string][]> {
  let objects: unknown[];
  try {
    objects = await listNftJson(["list", "map", "inet", ANTISPOOF_TABLE, name]);
  } catch {
    return [];
  }
  const pairs: [string, string][] = [];
  for (const object of objects) {
    const elements = (object as { map?: { elem?: unknown } }).map?.elem;
    if (!Array.isArray(elements)) continue;
    for (const element of elements) {
      if (Array.isArray(element) && typeof element[0] === "string" && typeof element[1] === "string") {
        pairs.push([element[0], element[1]]);
      }
    }
  }
  return pairs;
}

/** Reads both ICMP inner-rewrite maps of the current namespace. */
async function readInnerMaps(): Promise<InnerMaps> {
  return { v4: await readMap(INNER4), v6: await readMap(INNER6) };
}

let seq = Math.floor(Date.now() / 1000) & 0xffffff;
const nextSeq = () => {
  seq = (seq + 16) & 0x7fffffff;
  return seq;
};

/** Waits for all; rejects with the first failure in order (the kernel's first error). */
export async function firstFailure(sent: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(sent);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) throw failed.reason;
}

/** Structural operations sent to the kernel in runs (see `structure`). */
type RunOp = Extract<StructOp, { op: "move-in" | "veth" }>;

/** This ProxyVM's owner mark: the inode of the agent's own network namespace. */
function ownMark(): string {
  return ownerMark(statSync("/proc/thread-self/ns/net").ino);
}

/** Opens the named namespace for the length of `use`: its fd and, on demand, a netlink adapter inside it. */
async function inNamespace<T>(
  netns: string,
  use: (fd: number, netlink: () => NetlinkAdapter) => Promise<T>,
): Promise<T> {
  const fd = openNetnsFd(netns);
  let netlink: NetlinkAdapter | undefined;
  try {
    return await use(fd, () => {
      netlink ??= openNetlink({ netnsFd: fd });
      return netlink;
    });
  } finally {
    // sockets and the fd pin the namespace: nothing is kept past this change
    netlink?.close();
    closeNetnsFd(fd);
  }
}

function missing(dev: string, netns?: string): SystemError {
  return new SystemError(`Cannot find device "${dev}"${netns === undefined ? "" : ` in netns "${netns}"`}`);
}

async function insideOps(netns: string, netlink: NetlinkAdapter, ops: readonly InsideOp[]) {
  // the namespace holds a handful of links: one dump finds them all
  const links = new Map((await netlink.listLinks()).map((link) => [link.name, link.index]));
  const index = (dev: string) => {
    const found = links.get(dev);
    if (found === undefined) throw missing(dev, netns);
    return found;
  };
  // Without flushes (dump-then-delete sequences) every request is independent:
  // all are sent at once, and the kernel runs them in the order sent (each
  // sendmsg is processed before it returns), so ordering still holds.
  if (!ops.some((op) => op.op.startsWith("flush-"))) {
    const at = ops.map((op) => index(op.dev)); // every link is there before anything is sent
    await firstFailure(ops.map((op, i) => insideOp(netlink, at[i] ?? 0, op)));
    return;
  }
  for (const op of ops) await insideOp(netlink, index(op.dev), op);
}

/** Starts one inside operation; its request is sent before this returns (see `insideOps`). */
function insideOp(netlink: NetlinkAdapter, at: number, op: InsideOp): Promise<void> {
  switch (op.op) {
    case "addrgenmode-none":
      return netlink.setAddrGenModeNone(at);
    case "flush-addrs":
      return netlink.flushAddresses(at, new Set(op.keep));
    case "flush-routes":
      return netlink.flushRoutes(at, new Set(op.keep));
    case "flush-neighs":
      return netlink.flushPermanentNeighbours(at, new Set(op.keep));
    case "addr":
      return netlink.replaceAddress(at, op.address, op.prefix);
    case "link-up":
      return netlink.setLinkUp(at);
    case "route":
      return netlink.replaceRoute(at, op.dst, op.prefix, 0);
    case "neigh":
      return netlink.replaceNeighbour(at, op.address, op.mac);
    case "alias":
      return netlink.setAlias(at, op.alias);
  }
}

/** Throwaway namespaces of `warmUp`: never a `vif*-nat` name, so never taken for a vif's. */
const WARMUP_PREFIX = "qubes-fakeip-warmup-";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function warmUp(native: ReturnType<typeof nativeNetns>): Promise<void> {
  // a warm-up killed half-way left its namespaces: remove those of dead agents
  for (const name of listNetns()) {
    const pid = Number(/^qubes-fakeip-warmup-(\d+)-[ab]$/.exec(name)?.[1]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) deleteNetns(name);
  }
  const a = `${WARMUP_PREFIX}${process.pid}-a`;
  const b = `${WARMUP_PREFIX}${process.pid}-b`;
  try {
    await createNetns(a);
    await createNetns(b, NETNS_SYSCTLS);
    await inNamespace(a, (_fdA, insideA) =>
      inNamespace(b, async (fdB, insideB) => {
        // a veth pair across the two, one end moved over: the bring-up's netlink paths
        await insideA().createVeth({
          name: "w0",
          mac: XEN_VIF_MAC,
          peer: "w0-p",
          peerMac: XEN_VIF_MAC,
          peerNetnsFd: fdB,
        });
        const w0 = (await insideA().listLinks()).find((link) => link.name === "w0");
        if (w0 !== undefined) await insideA().moveLink(w0.index, fdB);
        await insideOps(b, insideB(), [
          { op: "addrgenmode-none", dev: "w0" },
          { op: "flush-addrs", dev: "w0", keep: ["192.0.2.1/32"] },
          { op: "flush-routes", dev: "w0", keep: [] },
          { op: "flush-neighs", dev: "w0", keep: [] },
          { op: "addr", dev: "w0", address: "192.0.2.1", prefix: 32 },
          { op: "link-up", dev: "w0" },
          { op: "link-up", dev: "w0-p" },
          { op: "route", dev: "w0", dst: "192.0.2.2", prefix: 32 },
          { op: "neigh", dev: "w0", address: "192.0.2.2", mac: XEN_VIF_MAC },
        ]);
        await native.nftRun(
          `table netdev ${NAT_TABLE} { chain from-vm { type filter hook ingress device "w0" priority 0; policy drop; ip saddr 192.0.2.2 ip saddr set 192.0.2.3 fwd to "w0-p"; }; }\n`,
          fdB,
        );
      }),
    );
  } finally {
    for (const name of [a, b]) if (netnsExists(name)) deleteNetns(name);
  }
}

/** The real kernel, through the given netlink adapter (the agent's own namespace). */
export function createKernelSystem(netlink: NetlinkAdapter): NatSystem {
  const native = nativeNetns();
  ownNetnsFd(); // opened now, while certainly in the agent's own namespace
  const nftIn = async (script: string, netns: string) => {
    try {
      await inNamespace(netns, (fd) => native.nftRun(script, fd));
    } catch (error) {
      throw new SystemError(`Cannot apply nft script in netns "${netns}": ${(error as Error).message}`, {
        cause: error,
      });
    }
  };
  const nftHere = async (script: string) => {
    try {
      await native.nftRun(script, -1);
    } catch (error) {
      throw new SystemError(`Cannot apply nft script: ${(error as Error).message}`, { cause: error });
    }
  };
  /** The request of an operation sent in a run (see `structure`), given its namespace's fd. */
  const runRequest = (op: RunOp, fd: number): Promise<void> =>
    op.op === "move-in"
      ? netlink.moveLinkByName(op.dev, fd)
      : netlink.createVeth({
          name: op.peer,
          mac: op.peerMac,
          peer: op.dev,
          peerMac: op.mac,
          peerNetnsFd: fd,
        });
  /** The structural operations that are not sent in runs (see `structure`). */
  const structureOp = async (op: Exclude<StructOp, RunOp>): Promise<void> => {
    switch (op.op) {
      case "netns-add":
        await createNetns(op.netns, op.sysctls);
        return;
      case "netns-del":
        deleteNetns(op.netns);
        return;
      case "move-out":
        await inNamespace(op.netns, async (_fd, inside) => {
          const link = await inside().getLink(op.dev);
          if (link === undefined) throw missing(op.dev, op.netns);
          await inside().moveLink(link.index, ownNetnsFd());
        });
        return;
      case "link-del": {
        const link = await netlink.getLink(op.dev);
        if (link !== undefined) await netlink.deleteLink(link.index);
        return;
      }
      case "alias":
        await netlink.setAliasByName(op.dev, op.alias);
        return;
    }
  };
  return {
    getLink: (name) => netlink.getLink(name),
    listLinks: () => netlink.listLinks(),
    netnsExists,
    listNetns,
    async structure(ops) {
      // Runs of ProxyVM link requests (the move in, the veth pair) are sent
      // together, by name: the kernel runs them in the order sent (the veth's
      // name is free once the move ran), and the run costs one wait instead of
      // one per request plus an index look-up. Whatever fails, nothing wrong is
      // left: a move that fails leaves the name taken, so the pair is refused.
      // The alias (our ownership mark) is never sent in a run: were the pair
      // refused, it would mark Xen's own vif as ours.
      let run: Promise<void>[] = [];
      let fds: number[] = [];
      const send = (op: RunOp) => {
        const fd = openNetnsFd(op.netns);
        fds.push(fd);
        run.push(runRequest(op, fd));
      };
      const wait = async () => {
        try {
          await firstFailure(run);
        } finally {
          for (const fd of fds) closeNetnsFd(fd);
          run = [];
          fds = [];
        }
      };
      try {
        for (const op of ops) {
          if (op.op === "move-in" || op.op === "veth") {
            send(op);
            continue;
          }
          await wait();
          await structureOp(op);
        }
        await wait();
      } catch (error) {
        // whatever was sent is answered before the error goes up (no fd closed under a request)
        await Promise.allSettled(run);
        for (const fd of fds) closeNetnsFd(fd);
        throw error;
      }
    },
    inside: (netns, ops) => inNamespace(netns, (_fd, inside) => insideOps(netns, inside(), ops)),
    nft: (script, netns) => (netns === undefined ? nftHere(script) : nftIn(script, netns)),
    async natTableMark(netns) {
      try {
        const listing = await inNamespace(netns, (fd) =>
          native.nftRun(`list table netdev ${NAT_TABLE}\n`, fd),
        );
        return readNatTableMark(listing);
      } catch {
        return undefined; // no table (or no namespace): nothing to keep
      }
    },
    sysctl: writeSysctl,
    setLinkUp: (link) => (link.up ? Promise.resolve() : netlink.setLinkUp(link.index)),
    replaceAddress: (link, address, prefix) => netlink.replaceAddress(link.index, address, prefix),
    replaceRoute: (link, dst, prefix, metric) => netlink.replaceRoute(link.index, dst, prefix, metric),
    replaceNeighbour: (link, address, mac) => netlink.replaceNeighbour(link.index, address, mac),
    removeRoute: (link, dst, prefix) => netlink.removeRoute(link.index, dst, prefix),
    removeNeighbour: (link, address) => netlink.removeNeighbour(link.index, address),
    removeAddress: (link, address, prefix) => netlink.removeAddress(link.index, address, prefix),
    readInnerMaps,
    addIcmpInnerRules() {
      const batch = encodeIcmpInnerBatch(ANTISPOOF_TABLE, ICMP_INNER_CHAIN, ICMP_SETS, nextSeq());
      return netlink.sendNfTablesBatch(batch.bytes, batch.ruleSeqs);
    },
    owner: ownMark(),
    async namespaceOwner(netns) {
      try {
        return await inNamespace(netns, async (_fd, inside) => (await inside().getLink("lo"))?.alias);
      } catch {
        return undefined;
      }
    },
    watchLinkRemoval(netns, dev, onGone) {
      const fd = openNetnsFd(netns);
      try {
        return watchLinkRemoval(fd, dev, onGone);
      } finally {
        closeNetnsFd(fd); // the socket keeps its own reference on the namespace
      }
    },
    warmUp: () => warmUp(native),
    pid: process.pid,
    dryRun: false,
  };
}

/** Prints every mutation as `ip`/`nft`/`sysctl` text to `write`; observes with `observe`. */
export function createDryRunSystem(
  observe: Pick<NatSystem, "getLink" | "listLinks" | "netnsExists" | "listNetns" | "readInnerMaps">,
  write: (text: string) => void,
): NatSystem {
  const ip = (line: string) => write(`ip ${line}\n`);
  return {
    ...observe,
    async structure(ops) {
      for (const op of ops) {
        ip(renderStructOp(op, process.pid));
        if (op.op === "netns-add") {
          for (const [name, value] of op.sysctls)
            ip(`netns exec ${op.netns} sysctl -qw ${name.replaceAll("/", ".")}=${value}`);
        }
      }
    },
    async inside(netns, ops) {
      for (const op of ops) ip(`-n ${netns} ${renderInsideOp(op)}`);
    },
    async nft(script, netns) {
      write(`nft -f - ${netns === undefined ? "" : `(in netns ${netns}) `}<<'EOF'\n${script}EOF\n`);
    },
    sysctl: (path, value) => write(`sysctl -w ${path.replaceAll("/", ".")}=${value}\n`),
    setLinkUp: async (link) => ip(`link set dev ${link.name} up`),
    replaceAddress: async (link, address, prefix) => ip(`addr replace ${address}/${prefix} dev ${link.name}`),
    replaceRoute: async (link, dst, prefix, metric) =>
      ip(`route replace ${dst}/${prefix} dev ${link.name} metric ${metric}`),
    replaceNeighbour: async (link, address, mac) =>
      ip(`neigh replace ${address} lladdr ${mac} dev ${link.name} nud permanent`),
    removeRoute: async (link, dst, prefix) => ip(`route del ${dst}/${prefix} dev ${link.name}`),
    removeNeighbour: async (link, address) => ip(`neigh del ${address} dev ${link.name}`),
    removeAddress: async (link, address, prefix) => ip(`addr del ${address}/${prefix} dev ${link.name}`),
    async addIcmpInnerRules() {
      write(
        `# nfnetlink (nft cannot express the checksum offsets): add rule inet ${ANTISPOOF_TABLE} ${ICMP_INNER_CHAIN} icmp type @${ICMP_ERRORS4} @th,160,32 set @th,160,32 map @${INNER4} (csum inet at th+18); icmpv6 type @${ICMP_ERRORS6} @th,128,128 set @th,128,128 map @${INNER6} (csum inet at th+2)\n`,
      );
    },
    watchLinkRemoval: () => ({ close() {} }),
    natTableMark: async () => undefined,
    owner: ownMark(),
    namespaceOwner: async () => undefined,
    warmUp: async () => undefined,
    pid: process.pid,
    dryRun: true,
  };
}

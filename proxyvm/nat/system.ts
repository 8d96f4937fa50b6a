/**
 * Everything the NAT applier does to the kernel, behind one interface: the
 * real one (netlink, `ip -batch`, `nft`, /proc/sys) and a dry-run one that
 * prints each mutation instead of performing it (`--dry-run`). Observations
 * (reading links and namespaces) are real in both: a plan is only meaningful
 * against what exists.
 */
import type { LinkInfo, NetlinkAdapter } from "../system/netlink.js";
import { listNetns, netnsExists, runIpBatch, writeSysctl } from "../system/netns.js";
import { applyNftScript, listNftJson, type NftSession, openNftSession } from "../system/nft.js";
import { ICMP_ERRORS4, ICMP_ERRORS6, ICMP_INNER_CHAIN, INNER4, INNER6, type InnerMaps } from "./antispoof.js";
import { encodeIcmpInnerBatch } from "./icmp-inner.js";
import { ANTISPOOF_TABLE } from "./names.js";

const ICMP_SETS = { errors4: ICMP_ERRORS4, errors6: ICMP_ERRORS6, inner4: INNER4, inner6: INNER6 };

export interface NatSystem {
  getLink(name: string): Promise<LinkInfo | undefined>;
  listLinks(): Promise<LinkInfo[]>;
  netnsExists(name: string): boolean;
  listNetns(): string[];
  ipBatch(lines: readonly string[], netns?: string): Promise<void>;
  nft(script: string, netns?: string): Promise<void>;
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
  /** the agent's pid: `ip link set DEV netns PID` from a NAT namespace names the ProxyVM with it */
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

/** The real kernel, through the given netlink adapter. */
export function createKernelSystem(netlink: NetlinkAdapter): NatSystem {
  // The ProxyVM's own transactions (the allow-list, one per vif change) go
  // through one long-lived `nft -i`: no exec and no netlink socket setup per
  // change. The NAT namespaces' tables keep `nft -f` (one script each, once).
  let session: NftSession | undefined;
  const nftHere = (script: string) => {
    if (session === undefined || session.ended) session = openNftSession();
    return session.apply(script);
  };
  return {
    getLink: (name) => netlink.getLink(name),
    listLinks: () => netlink.listLinks(),
    netnsExists,
    listNetns,
    ipBatch: runIpBatch,
    nft: (script, netns) => (netns === undefined ? nftHere(script) : applyNftScript(script, { netns })),
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
    async ipBatch(lines, netns) {
      const prefix = netns === undefined ? "" : `-n ${netns} `;
      for (const line of lines) ip(`${prefix}${line}`);
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
    pid: process.pid,
    dryRun: true,
  };
}

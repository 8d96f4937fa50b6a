/**
 * The only module that imports `netlink` (STYLE.md: narrow interfaces in front
 * of every side effect). rtnetlink in the agent's own namespace, wrapped in
 * domain verbs. Every `replace*` is idempotent (NLM_F_CREATE|NLM_F_REPLACE),
 * every `remove*` treats "already gone" as success.
 */
import {
  createNetlink,
  createRtNetlink,
  FlagsNew,
  type NetlinkSocket,
  type RtNetlinkSocket,
  rt,
} from "netlink";
import { SystemError } from "../../shared/errors.js";
import { isIPv4, parseIPv4, parseIPv6 } from "../../shared/net/ip.js";

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  readonly alias: string | undefined;
  readonly up: boolean;
}

export interface LinkEvent {
  readonly name: string;
  readonly removed: boolean;
}

export interface NetlinkAdapter {
  getLink(name: string): Promise<LinkInfo | undefined>;
  listLinks(): Promise<LinkInfo[]>;
  setLinkUp(index: number): Promise<void>;
  replaceAddress(index: number, address: string, prefix: number): Promise<void>;
  replaceRoute(index: number, dst: string, prefix: number, metric: number): Promise<void>;
  replaceNeighbour(index: number, address: string, mac: string): Promise<void>;
  removeRoute(index: number, dst: string, prefix: number): Promise<void>;
  removeNeighbour(index: number, address: string): Promise<void>;
  removeAddress(index: number, address: string, prefix: number): Promise<void>;
  /**
   * Sends one nfnetlink batch (bytes built by a pure encoder, e.g.
   * nat/icmp-inner.ts) to nf_tables and waits for the acknowledgement of each
   * of `seqs`; rejects with the kernel's errno.
   */
  sendNfTablesBatch(bytes: Buffer, seqs: readonly number[]): Promise<void>;
  /** Calls `onEvent` for every link added, changed or removed; returns the unsubscribe function. */
  watchLinks(onEvent: (event: LinkEvent) => void): () => void;
  close(): void;
}

const REPLACE = { flags: FlagsNew.CREATE | FlagsNew.REPLACE };
const AF_INET = 2;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NFT_BATCH_TIMEOUT_MS = 5000;
/** errno codes meaning "it is already gone" for deletions */
const GONE = new Set(["ENOENT", "ESRCH", "EADDRNOTAVAIL", "ENODEV"]);

function addressBytes(address: string): { family: number; bytes: Buffer } {
  if (isIPv4(address)) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(parseIPv4(address));
    return { family: AF_INET, bytes };
  }
  const value = parseIPv6(address);
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(value >> 64n, 0);
  bytes.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, 8);
  return { family: AF_INET6, bytes };
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.replaceAll(":", ""), "hex");
}

function toLinkInfo(message: rt.LinkMessage): LinkInfo {
  return {
    index: message.data.index ?? 0,
    name: message.attrs.ifname ?? "",
    alias: message.attrs.ifalias,
    up: message.data.flags?.up === true,
  };
}

function errorCode(error: unknown): string {
  return error instanceof Error ? error.message.replace(/^Request rejected: /, "") : String(error);
}

async function attempt<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw new SystemError(`Cannot ${what}: ${errorCode(error)}`, { cause: error });
  }
}

async function removing(what: string, action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (GONE.has(errorCode(error))) return;
    throw new SystemError(`Cannot ${what}: ${errorCode(error)}`, { cause: error });
  }
}

/** Opens the rtnetlink socket of the current network namespace. */
export function openNetlink(): NetlinkAdapter {
  const socket: RtNetlinkSocket = createRtNetlink();
  let watcher: RtNetlinkSocket | undefined;
  let netfilter: NetlinkSocket | undefined;
  return {
    sendNfTablesBatch(bytes, seqs) {
      netfilter ??= createNetlink(NETLINK_NETFILTER);
      const nf = netfilter;
      return new Promise((resolve, reject) => {
        const waiting = new Set(seqs);
        const done = (error?: Error) => {
          clearTimeout(timer);
          nf.off("message", listener);
          if (error === undefined) resolve();
          else reject(error);
        };
        const listener = (messages: { type: number; seq: number; data: Buffer }[]) => {
          for (const message of messages) {
            if (message.type !== NLMSG_ERROR || !waiting.has(message.seq)) continue;
            const errno = message.data.readInt32LE(0);
            if (errno !== 0) {
              done(
                new SystemError(`Cannot add the nf_tables rule (message ${message.seq}): errno ${-errno}`),
              );
              return;
            }
            waiting.delete(message.seq);
            if (waiting.size === 0) done();
          }
        };
        const timer = setTimeout(
          () => done(new SystemError("Cannot add the nf_tables rules: no reply in 5 s")),
          NFT_BATCH_TIMEOUT_MS,
        );
        nf.on("message", listener);
        nf.socket.send(bytes, {}, (error) => {
          if (error !== undefined && error !== null)
            done(new SystemError(`Cannot send to nf_tables: ${error.message}`));
        });
      });
    },
    async getLink(name) {
      try {
        const [message] = await socket.getLink({}, { ifname: name });
        return message === undefined ? undefined : toLinkInfo(message);
      } catch (error) {
        if (GONE.has(errorCode(error))) return undefined;
        throw new SystemError(`Cannot read link "${name}": ${errorCode(error)}`, { cause: error });
      }
    },
    async listLinks() {
      return (await attempt("list links", () => socket.getLinks())).map(toLinkInfo);
    },
    async setLinkUp(index) {
      await attempt(`set link ${index} up`, () =>
        socket.setLink({ index, flags: { up: true }, change: { up: true } }),
      );
    },
    async replaceAddress(index, address, prefix) {
      const { family, bytes } = addressBytes(address);
      const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes };
      // IFA_F_NODAD (0x02): the address is ours by definition, duplicate detection only delays it
      const flags: rt.AddressFlags = family === AF_INET6 ? { nodad: true } : {};
      await attempt(`add address "${address}/${prefix}" to link ${index}`, () =>
        socket.newAddress({ family, prefixlen: prefix, index, flags }, attrs, REPLACE),
      );
    },
    async replaceRoute(index, dst, prefix, metric) {
      const { family, bytes } = addressBytes(dst);
      await attempt(`add route "${dst}/${prefix}" via link ${index}`, () =>
        socket.newRoute(
          { family, dstLen: prefix, table: RT_TABLE_MAIN, protocol: "BOOT", scope: "LINK", type: "UNICAST" },
          { dst: bytes, oif: index, priority: metric },
          REPLACE,
        ),
      );
    },
    async replaceNeighbour(index, address, mac) {
      const { family, bytes } = addressBytes(address);
      await attempt(`add neighbour "${address}" on link ${index}`, () =>
        socket.newNeighbor(
          { family, ifindex: index, state: { permanent: true } },
          { dst: bytes, lladdr: macBytes(mac) },
          REPLACE,
        ),
      );
    },
    async removeRoute(index, dst, prefix) {
      const { family, bytes } = addressBytes(dst);
      await removing(`remove route "${dst}/${prefix}"`, () =>
        socket.delRoute({ family, dstLen: prefix, table: RT_TABLE_MAIN }, { dst: bytes, oif: index }),
      );
    },
    async removeNeighbour(index, address) {
      const { family, bytes } = addressBytes(address);
      await removing(`remove neighbour "${address}"`, () =>
        socket.delNeighbor({ family, ifindex: index }, { dst: bytes }),
      );
    },
    async removeAddress(index, address, prefix) {
      const { family, bytes } = addressBytes(address);
      const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes };
      await removing(`remove address "${address}/${prefix}"`, () =>
        socket.delAddress({ family, prefixlen: prefix, index }, attrs),
      );
    },
    watchLinks(onEvent) {
      // A second socket subscribed to RTNLGRP_LINK: notifications never mix with replies.
      // The raw socket's messages carry the type (RTM_NEWLINK / RTM_DELLINK) the parsed ones lack.
      // A burst of 200 vifs is a few hundred messages: a 1 MiB buffer keeps them all.
      watcher ??= createRtNetlink({ ref: true, recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 });
      watcher.addMembership("LINK");
      const listener = (messages: { type: number; data: Buffer }[]) => {
        for (const message of messages) {
          if (message.type !== RTM_NEWLINK && message.type !== RTM_DELLINK) continue;
          const name = rt.parseLinkMessage(message.data).attrs.ifname;
          if (name !== undefined) onEvent({ name, removed: message.type === RTM_DELLINK });
        }
      };
      watcher.socket.on("message", listener);
      return () => {
        watcher?.socket.off("message", listener);
        watcher?.socket.close();
        watcher = undefined;
      };
    },
    close() {
      socket.socket.close();
      netfilter?.close();
      netfilter = undefined;
      watcher?.socket.close();
      watcher = undefined;
    },
  };
}

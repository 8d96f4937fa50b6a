/**
 * The only module that imports `netlink` (STYLE.md: narrow interfaces in front
 * of every side effect). rtnetlink in the agent's own namespace or, with
 * `netnsFd`, in another one (the sockets are created while the main thread has
 * joined it, see netns.ts `withNetns`), wrapped in domain verbs. Every
 * `replace*` is idempotent (NLM_F_CREATE|NLM_F_REPLACE), every `remove*` and
 * `flush*` treats "already gone" as success.
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
import { formatIPv4, formatIPv6, isIPv4, parseIPv4, parseIPv6 } from "../../shared/net/ip.js";
import { withNetns } from "./netns.js";

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
  /** Moves a link into the network namespace of `netnsFd` (it is down there). */
  moveLink(index: number, netnsFd: number): Promise<void>;
  /** `moveLink` by name (the request is sent before this returns: requests may be pipelined). */
  moveLinkByName(name: string, netnsFd: number): Promise<void>;
  /** Sets a link's alias, by name (sent before this returns). */
  setAliasByName(name: string, alias: string): Promise<void>;
  /**
   * Creates a veth pair: `name` (MAC `mac`) here, its peer `peer` (MAC
   * `peerMac`) in the namespace of `peerNetnsFd`.
   */
  createVeth(spec: {
    name: string;
    mac: string;
    peer: string;
    peerMac: string;
    peerNetnsFd: number;
  }): Promise<void>;
  setAlias(index: number, alias: string): Promise<void>;
  deleteLink(index: number): Promise<void>;
  /** IPv6 address generation mode "none": no link-local address, so the link never speaks IPv6 by itself. */
  setAddrGenModeNone(index: number): Promise<void>;
  /** Removes every address of the link but those in `keep` (`ADDRESS/PREFIX`, normalised). */
  flushAddresses(index: number, keep?: ReadonlySet<string>): Promise<void>;
  /** Removes every main-table route through the link but those in `keep` (`DST/PREFIX`). */
  flushRoutes(index: number, keep?: ReadonlySet<string>): Promise<void>;
  /** Removes the link's permanent neighbour entries but those in `keep` (`ADDRESS`). */
  flushPermanentNeighbours(index: number, keep?: ReadonlySet<string>): Promise<void>;
  /** Calls `onEvent` for every link added, changed or removed; returns the unsubscribe function. */
  watchLinks(onEvent: (event: LinkEvent) => void): () => void;
  close(): void;
}

const REPLACE = { flags: FlagsNew.CREATE | FlagsNew.REPLACE };
const AF_INET = 2;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RTM_NEWLINK = 16;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const IN6_ADDR_GEN_MODE_NONE = 1;
const IFINFOMSG_SIZE = 16;
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

/** The text form of an address in netlink bytes (4 or 16); IPv6 as `normalizeIPv6` writes it. */
function addressText(bytes: Buffer | undefined): string | undefined {
  if (bytes?.length === 4) return formatIPv4(bytes.readUInt32BE(0));
  if (bytes?.length === 16) return formatIPv6((bytes.readBigUInt64BE(0) << 64n) | bytes.readBigUInt64BE(8));
  return undefined;
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.replaceAll(":", ""), "hex");
}

/** One netlink attribute (type, payload), padded to 4 bytes. */
function attr(type: number, payload: Buffer): Buffer {
  const length = 4 + payload.length;
  const out = Buffer.alloc((length + 3) & ~3);
  out.writeUInt16LE(length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
}

/**
 * IFLA_LINKINFO of a veth whose peer is `peer` in the namespace of
 * `netnsFd`: kind "veth", data = VETH_INFO_PEER { ifinfomsg, IFLA_IFNAME,
 * IFLA_ADDRESS, IFLA_NET_NS_FD } (the package has no encoder for veth data).
 */
export function vethLinkInfo(peer: string, peerMac: string, netnsFd: number): Buffer {
  const peerAttrs = Buffer.concat([
    Buffer.alloc(IFINFOMSG_SIZE),
    attr(IFLA_IFNAME, Buffer.from(`${peer}\0`)),
    attr(IFLA_ADDRESS, macBytes(peerMac)),
    attr(IFLA_NET_NS_FD, u32(netnsFd)),
  ]);
  return Buffer.concat([
    attr(IFLA_INFO_KIND, Buffer.from("veth\0")),
    attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peerAttrs)),
  ]);
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

export interface OpenNetlinkOptions {
  /** open the sockets in the network namespace of this fd (default: the agent's own) */
  readonly netnsFd?: number | undefined;
}

/**
 * Watches the namespace of `netnsFd` for the removal of the link `name` (a
 * VM's vif that Xen removed inside a NAT namespace, where the agent's own link
 * events do not reach). One socket, subscribed to link events and created
 * synchronously; it then asks once whether the link is there at all, so a
 * removal just before the watch began is not missed. `onGone` runs at most
 * once. The socket holds the namespace: close the watch before deleting it.
 */
export function watchLinkRemoval(netnsFd: number, name: string, onGone: () => void): { close(): void } {
  const socket = withNetns(netnsFd, () =>
    createRtNetlink({ recvBufferSize: 1 << 16, sendBufferSize: 1 << 12 }),
  );
  let done = false;
  const gone = () => {
    if (done) return;
    done = true;
    onGone();
  };
  socket.addMembership("LINK");
  socket.socket.on("message", (messages: { type: number; data: Buffer }[]) => {
    for (const message of messages) {
      if (message.type === RTM_DELLINK && rt.parseLinkMessage(message.data).attrs.ifname === name) gone();
    }
  });
  socket.getLink({}, { ifname: name }).then(
    (found) => {
      if (found.length === 0) gone();
    },
    (error: unknown) => {
      if (GONE.has(errorCode(error))) gone();
    },
  );
  return {
    close() {
      done = true;
      socket.socket.close();
    },
  };
}

/** Opens the rtnetlink socket of the agent's network namespace, or of `netnsFd`'s. */
export function openNetlink(options: OpenNetlinkOptions = {}): NetlinkAdapter {
  // Every socket is created in the namespace (its namespace is fixed at creation).
  const inNamespace = <T>(make: () => T): T => withNetns(options.netnsFd, make);
  const socket: RtNetlinkSocket = inNamespace(() => createRtNetlink());
  /**
   * A dump runs on a socket of its own: the kernel answers a request sent
   * while a dump on the same socket is still being read in between the dump's
   * parts, and the package then fails the dump ("Multipart message not
   * terminated properly"; seen with 50 vifs: a SIGHUP's link listing beside a
   * link-event resync).
   */
  const dump = async <T>(what: string, request: (dumper: RtNetlinkSocket) => Promise<T>): Promise<T> => {
    const dumper = inNamespace(() => createRtNetlink({ recvBufferSize: 1 << 20, sendBufferSize: 1 << 12 }));
    try {
      return await attempt(what, () => request(dumper));
    } finally {
      dumper.socket.close();
    }
  };
  let watcher: RtNetlinkSocket | undefined;
  let netfilter: NetlinkSocket | undefined;
  return {
    sendNfTablesBatch(bytes, seqs) {
      netfilter ??= inNamespace(() => createNetlink(NETLINK_NETFILTER));
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
      return (await dump("list links", (dumper) => dumper.getLinks())).map(toLinkInfo);
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
    async moveLink(index, netnsFd) {
      await attempt(`move link ${index} to another network namespace`, () =>
        socket.setLink({ index }, { netNsFd: netnsFd }),
      );
    },
    async moveLinkByName(name, netnsFd) {
      await attempt(`move link "${name}" to another network namespace`, () =>
        socket.setLink({}, { ifname: name, netNsFd: netnsFd }),
      );
    },
    async setAliasByName(name, alias) {
      await attempt(`set the alias of link "${name}"`, () =>
        socket.setLink({}, { ifname: name, ifalias: alias }),
      );
    },
    async createVeth({ name, mac, peer, peerMac, peerNetnsFd }) {
      await attempt(`create veth pair "${name}"/"${peer}"`, () =>
        socket.newLink(
          {},
          { ifname: name, address: macBytes(mac), linkinfo: vethLinkInfo(peer, peerMac, peerNetnsFd) },
          { flags: FlagsNew.CREATE | FlagsNew.EXCL },
        ),
      );
    },
    async setAlias(index, alias) {
      await attempt(`set the alias of link ${index}`, () => socket.setLink({ index }, { ifalias: alias }));
    },
    async deleteLink(index) {
      await removing(`delete link ${index}`, () => socket.delLink({ index }));
    },
    async setAddrGenModeNone(index) {
      const mode = attr(IFLA_INET6_ADDR_GEN_MODE, Buffer.from([IN6_ADDR_GEN_MODE_NONE]));
      await attempt(`set addrgenmode none on link ${index}`, () =>
        socket.setLink({ index }, { afSpec: new Map([[AF_INET6, mode]]) }),
      );
    },
    async flushAddresses(index, keep) {
      const all = await dump("list addresses", (dumper) => dumper.getAddresses());
      for (const message of all) {
        const { family, prefixlen } = message.data;
        if (message.data.index !== index || family === undefined || prefixlen === undefined) continue;
        const text = addressText(message.attrs.local ?? message.attrs.address);
        if (text !== undefined && keep?.has(`${text}/${prefixlen}`)) continue;
        const attrs: rt.AddressAttrs = {};
        if (message.attrs.local !== undefined) attrs.local = message.attrs.local;
        if (message.attrs.address !== undefined) attrs.address = message.attrs.address;
        await removing(`remove an address of link ${index}`, () =>
          socket.delAddress({ family, prefixlen, index }, attrs),
        );
      }
    },
    async flushRoutes(index, keep) {
      for (const family of [AF_INET, AF_INET6]) {
        const all = await dump("list routes", (dumper) => dumper.getRoutes({ family }));
        for (const message of all) {
          if (message.attrs.oif !== index || (message.attrs.table ?? message.data.table) !== RT_TABLE_MAIN)
            continue;
          if (message.data.type !== undefined && message.data.type !== "UNICAST") continue;
          const dst = addressText(message.attrs.dst);
          if (dst !== undefined && keep?.has(`${dst}/${message.data.dstLen ?? 0}`)) continue;
          const attrs: rt.RouteAttrs = { oif: index };
          if (message.attrs.dst !== undefined) attrs.dst = message.attrs.dst;
          await removing(`remove a route of link ${index}`, () =>
            socket.delRoute({ family, dstLen: message.data.dstLen ?? 0, table: RT_TABLE_MAIN }, attrs),
          );
        }
      }
    },
    async flushPermanentNeighbours(index, keep) {
      for (const family of [AF_INET, AF_INET6]) {
        const all = await dump("list neighbours", (dumper) => dumper.getNeighbors({ family }));
        for (const message of all) {
          const dst = message.attrs.dst;
          if (message.data.ifindex !== index || message.data.state?.permanent !== true || dst === undefined)
            continue;
          const text = addressText(dst);
          if (text !== undefined && keep?.has(text)) continue;
          await removing(`remove a neighbour of link ${index}`, () =>
            socket.delNeighbor({ family, ifindex: index }, { dst }),
          );
        }
      }
    },
    watchLinks(onEvent) {
      // A second socket subscribed to RTNLGRP_LINK: notifications never mix with replies.
      // The raw socket's messages carry the type (RTM_NEWLINK / RTM_DELLINK) the parsed ones lack.
      // A burst of 200 vifs is a few hundred messages: a 1 MiB buffer keeps them all.
      watcher ??= inNamespace(() =>
        createRtNetlink({ ref: true, recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 }),
      );
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

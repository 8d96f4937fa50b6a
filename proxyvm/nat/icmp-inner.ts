/**
 * The one nft rule the nft CLI cannot express (pure encoder, no I/O): rewrite
 * the source address embedded in an ICMP/ICMPv6 error from the native address
 * N to the VM's visible address V, with a valid checksum.
 *
 * The kernel's payload statement can fix a checksum for a raw write
 * (`csum_type inet` + `csum_offset`), but nft 1.0.6 only asks for that on
 * fields it knows (`nft --debug=netlink` shows `csum_type 0` for
 * `@th,160,32 set ...`). So this module encodes the rule as nfnetlink bytes,
 * sent by the agent itself in the ProxyVM (system/netlink.ts):
 *
 * - IPv4: the inner source lies at transport header + 20 (8 bytes of ICMP
 *   header, then the inner IP header's source at 12). The write names the
 *   inner IP header's checksum (transport header + 18) as the checksum to fix:
 *   that field changes by exactly the opposite of the address, so the ICMP
 *   checksum, which covers both, stays valid and the inner header is valid too.
 * - IPv6: the inner source lies at transport header + 16; the inner IPv6
 *   header has no checksum, so the write fixes the ICMPv6 checksum itself
 *   (transport header + 2) incrementally.
 *
 * - The quoted UDP/TCP checksum covers a pseudo-header with N too: left as
 *   it is, its difference from the checksum the VM computed would reveal N.
 *   No write can correct both it and the inner IP checksum, so a first rule
 *   sets it to 0, a constant that carries nothing (for UDP over IPv4 even a
 *   valid "no checksum"), fixing the ICMP checksum incrementally. A quote too
 *   short to hold it makes that write fail, which only ends that rule.
 *
 * Each rule: nfproto, l4proto, type in the named set of error types, inner
 * source looked up in the named map N → V, then the write(s). They live in the
 * anti-spoofing table's `icmp-inner` chain (postrouting, after every other
 * hook, so forwarded and the ProxyVM's own errors are both covered).
 */

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWRULE = 6;
const NFPROTO_INET = 1;
const NFPROTO_IPV4 = 2;
const NFPROTO_IPV6 = 10;
const NFT_REG_1 = 1;
const NFT_META_NFPROTO = 15;
const NFT_META_L4PROTO = 16;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const NFT_PAYLOAD_CSUM_INET = 1;

/**
 * Where things are, per family, from the start of the ICMP header: the inner
 * source (`offset`, `length`), the checksum its write fixes, the inner protocol
 * byte, the start of the quoted L4 header (IPv4 only without options: the
 * rules require 0x45 as the inner header's first byte).
 */
export const ICMP_INNER = {
  4: { nfproto: NFPROTO_IPV4, l4proto: 1, offset: 20, length: 4, csumOffset: 18, protoAt: 17, l4At: 28 },
  6: { nfproto: NFPROTO_IPV6, l4proto: 58, offset: 16, length: 16, csumOffset: 2, protoAt: 14, l4At: 48 },
} as const;
/** ICMP checksum: at byte 2 of the ICMP/ICMPv6 header. */
const ICMP_CSUM = 2;
/** The quoted transport protocols whose checksum covers the addresses: UDP (checksum at 6), TCP (at 16). */
const QUOTED_L4 = [
  { proto: 17, csumAt: 6 },
  { proto: 6, csumAt: 16 },
] as const;

type Attr = Buffer;

function align4(length: number): number {
  return (length + 3) & ~3;
}

function attr(type: number, payload: Buffer): Attr {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + payload.length, 0);
  header.writeUInt16LE(type, 2);
  return Buffer.concat([header, payload, Buffer.alloc(align4(payload.length) - payload.length)]);
}

const nested = (type: number, children: Attr[]) => attr(type | NLA_F_NESTED, Buffer.concat(children));
const text = (type: number, value: string) => attr(type, Buffer.from(`${value}\0`));
function u32(type: number, value: number): Attr {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(value);
  return attr(type, payload);
}

function expression(name: string, data: Attr[]): Attr {
  // NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }
  return nested(1, [text(1, name), nested(2, data)]);
}

const meta = (key: number) => expression("meta", [u32(2, key), u32(1, NFT_REG_1)]);
// NFTA_CMP_SREG, NFTA_CMP_OP (EQ), NFTA_CMP_DATA { NFTA_DATA_VALUE }
const cmpEqual = (value: Buffer) =>
  expression("cmp", [u32(1, NFT_REG_1), u32(2, 0), nested(3, [attr(1, value)])]);
// NFTA_PAYLOAD_DREG, BASE, OFFSET, LEN
const load = (offset: number, length: number) =>
  expression("payload", [
    u32(1, NFT_REG_1),
    u32(2, NFT_PAYLOAD_TRANSPORT_HEADER),
    u32(3, offset),
    u32(4, length),
  ]);
// NFTA_LOOKUP_SET, SREG, (DREG for a map)
const lookup = (set: string, map: boolean) =>
  expression("lookup", [text(1, set), u32(2, NFT_REG_1), ...(map ? [u32(3, NFT_REG_1)] : [])]);
// NFTA_PAYLOAD_BASE, OFFSET, LEN, SREG, CSUM_TYPE, CSUM_OFFSET, CSUM_FLAGS (0: no pseudo-header)
const write = (offset: number, length: number, csumOffset: number) =>
  expression("payload", [
    u32(2, NFT_PAYLOAD_TRANSPORT_HEADER),
    u32(3, offset),
    u32(4, length),
    u32(5, NFT_REG_1),
    u32(6, NFT_PAYLOAD_CSUM_INET),
    u32(7, csumOffset),
    u32(8, 0),
  ]);

// NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA { NFTA_DATA_VALUE }
const immediate = (value: Buffer) =>
  expression("immediate", [u32(1, NFT_REG_1), nested(2, [attr(1, value)])]);

/** The match shared by every rule: an ICMP error of `family` whose inner source is a key of `innerMap`. */
function matchError(family: 4 | 6, errorsSet: string, innerMap: string, map: boolean): Attr[] {
  const f = ICMP_INNER[family];
  return [
    meta(NFT_META_NFPROTO),
    cmpEqual(Buffer.from([f.nfproto])),
    meta(NFT_META_L4PROTO),
    cmpEqual(Buffer.from([f.l4proto])),
    load(0, 1),
    lookup(errorsSet, false),
    load(f.offset, f.length),
    lookup(innerMap, map),
  ];
}

/** The rule that rewrites the inner source of one family. */
export function encodeRuleExpressions(family: 4 | 6, errorsSet: string, innerMap: string): Attr[] {
  const f = ICMP_INNER[family];
  return [...matchError(family, errorsSet, innerMap, true), write(f.offset, f.length, f.csumOffset)];
}

/** The rule that zeroes the quoted UDP or TCP checksum (before the source is rewritten). */
export function encodeZeroL4Expressions(
  family: 4 | 6,
  proto: number,
  csumAt: number,
  errorsSet: string,
  innerMap: string,
): Attr[] {
  const f = ICMP_INNER[family];
  const ipv4Plain = family === 4 ? [load(8, 1), cmpEqual(Buffer.from([0x45]))] : [];
  return [
    ...matchError(family, errorsSet, innerMap, false),
    ...ipv4Plain,
    load(f.protoAt, 1),
    cmpEqual(Buffer.from([proto])),
    immediate(Buffer.alloc(2)),
    write(f.l4At + csumAt, 2, ICMP_CSUM),
  ];
}

function message(
  type: number,
  flags: number,
  seq: number,
  family: number,
  resId: number,
  attrs: Attr[],
): Buffer {
  const body = Buffer.concat(attrs);
  const header = Buffer.alloc(20);
  header.writeUInt32LE(20 + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags, 6);
  header.writeUInt32LE(seq, 8);
  header.writeUInt32LE(0, 12);
  // struct nfgenmsg: family, version (NFNETLINK_V0), res_id (big endian)
  header.writeUInt8(family, 16);
  header.writeUInt8(0, 17);
  header.writeUInt16BE(resId, 18);
  return Buffer.concat([header, body]);
}

export interface RuleBatch {
  readonly bytes: Buffer;
  /** sequence numbers of the messages the kernel acknowledges (the rules) */
  readonly ruleSeqs: readonly number[];
}

/**
 * One nfnetlink batch (one transaction) appending the rewrite rules for both
 * families to `table inet TABLE` chain `chain`. `firstSeq` numbers the messages.
 */
export function encodeIcmpInnerBatch(
  table: string,
  chain: string,
  sets: { errors4: string; errors6: string; inner4: string; inner6: string },
  firstSeq: number,
): RuleBatch {
  const rule = (seq: number, expressions: Attr[]) =>
    message(
      (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
      NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
      seq,
      NFPROTO_INET,
      0,
      [text(1, table), text(2, chain), nested(4, expressions)],
    );
  const rules: Attr[][] = [];
  for (const family of [4, 6] as const) {
    const errors = family === 4 ? sets.errors4 : sets.errors6;
    const map = family === 4 ? sets.inner4 : sets.inner6;
    // ordered: the quoted checksums are zeroed while the inner source still is N
    for (const l4 of QUOTED_L4) rules.push(encodeZeroL4Expressions(family, l4.proto, l4.csumAt, errors, map));
    rules.push(encodeRuleExpressions(family, errors, map));
  }
  const seqs = rules.map((_, i) => firstSeq + 1 + i);
  const bytes = Buffer.concat([
    message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, firstSeq, 0, NFNL_SUBSYS_NFTABLES, []),
    ...rules.map((expressions, i) => rule(firstSeq + 1 + i, expressions)),
    message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, firstSeq + rules.length + 1, 0, NFNL_SUBSYS_NFTABLES, []),
  ]);
  return { bytes, ruleSeqs: seqs };
}

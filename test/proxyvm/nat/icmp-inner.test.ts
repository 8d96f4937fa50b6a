import t from "tap";
import { encodeIcmpInnerBatch } from "../../../proxyvm/nat/icmp-inner.js";

const sets = { errors4: "icmp-errors4", errors6: "icmp-errors6", inner4: "inner4", inner6: "inner6" };

/** Splits a netlink byte stream into [type, flags, seq] per message. */
function headers(bytes: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const length = bytes.readUInt32LE(offset);
    out.push([
      bytes.readUInt16LE(offset + 4),
      bytes.readUInt16LE(offset + 6),
      bytes.readUInt32LE(offset + 8),
    ]);
    offset += length;
  }
  return out;
}

t.test(
  "the batch is begin, six rules (zero quoted UDP/TCP checksums, then rewrite, per family), end",
  async (t) => {
    const batch = encodeIcmpInnerBatch("qubes-fakeip-antispoof", "icmp-inner", sets, 100);
    const rule = [0x0a06, 0x1 | 0x4 | 0x400 | 0x800];
    t.same(headers(batch.bytes), [
      [0x10, 0x1, 100],
      ...[101, 102, 103, 104, 105, 106].map((seq) => [...rule, seq]),
      [0x11, 0x1, 107],
    ]);
    t.same(batch.ruleSeqs, [101, 102, 103, 104, 105, 106]);
  },
);

t.test(
  "the rewrite asks the kernel to fix the inner IPv4 header checksum and the ICMPv6 checksum",
  async (t) => {
    const bytes = encodeIcmpInnerBatch("t", "c", sets, 1).bytes;
    // NFTA_PAYLOAD_CSUM_TYPE (6) = 1 then NFTA_PAYLOAD_CSUM_OFFSET (7) = 18 / 2, as big-endian u32 attributes
    const csum = (offset: number) => Buffer.from([8, 0, 6, 0, 0, 0, 0, 1, 8, 0, 7, 0, 0, 0, 0, offset]);
    t.ok(bytes.includes(csum(18)), "inner IPv4 header checksum at transport header + 18");
    t.ok(bytes.includes(csum(2)), "ICMP/ICMPv6 checksum at transport header + 2");
  },
);

import t from "tap";
import { framesContaining, icmpName, parsePcap, summarizeFrame } from "../../scripts/lab/pcap.js";

/** A little-endian microsecond pcap file holding `frames`. */
function pcap(frames: Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = frames.map((f) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([header, ...records]);
}

/** Ethernet + IPv4 + (ICMP type/code + quoted inner IPv4 header). */
function icmpFrame(src: string, dst: string, type: number, code: number, innerSrc: string): Buffer {
  const ip = (s: string, d: string, proto: number) => {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h[9] = proto;
    Buffer.from(s.split(".").map(Number)).copy(h, 12);
    Buffer.from(d.split(".").map(Number)).copy(h, 16);
    return h;
  };
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const icmp = Buffer.from([type, code, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([eth, ip(src, dst, 1), icmp, ip(innerSrc, "198.51.100.1", 17)]);
}

t.test("every frame of a capture is read back, also from a file cut short", async (t) => {
  const frames = [Buffer.from("one"), Buffer.from("second frame")];
  t.same(parsePcap(pcap(frames)), frames);
  const whole = pcap(frames);
  t.same(
    parsePcap(whole.subarray(0, whole.length - 3)),
    [frames[0]],
    "a half-written last record is dropped",
  );
  t.same(parsePcap(Buffer.alloc(0)), []);
  t.throws(() => parsePcap(Buffer.alloc(24)), { message: "Cannot read the capture: magic 0x0 is not pcap" });
});

t.test("the native IP is found in binary or as text, inside an ICMP error's quoted header too", async (t) => {
  const leaking = icmpFrame("10.137.0.3", "10.152.152.11", 11, 0, "10.137.0.4");
  const clean = icmpFrame("10.137.0.3", "10.152.152.11", 11, 0, "10.152.152.11");
  const text = Buffer.from("peer=10.137.0.4\n");
  t.same(framesContaining([clean, leaking, text], "10.137.0.4"), [1, 2]);
  t.same(framesContaining([clean], "10.137.0.4"), []);
});

t.test("frames are summarised with their ICMP type by name", async (t) => {
  t.same(summarizeFrame(icmpFrame("10.137.0.3", "10.152.152.11", 3, 13, "10.152.152.11")), {
    src: "10.137.0.3",
    dst: "10.152.152.11",
    protocol: 1,
    icmp: { type: 3, code: 13 },
  });
  t.equal(summarizeFrame(Buffer.alloc(10)), undefined, "not IPv4");
  const names: Array<[number, number, string]> = [
    [0, 0, "echo-reply"],
    [11, 0, "time-exceeded"],
    [3, 1, "host-unreachable"],
    [3, 3, "port-unreachable"],
    [3, 13, "admin-prohibited"],
    [3, 9, "unreachable/9"],
    [5, 1, "icmp-5/1"],
  ];
  for (const [type, code, name] of names) t.equal(icmpName(type, code), name);
});

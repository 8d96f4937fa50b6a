/**
 * Seeded fuzz of the compiler: random valid rule sets (built through the
 * shared grammar, so only what dom0 could publish) must compile to scripts
 * the kernel's nft accepts (`nft -c`, in a namespace of our own), and the
 * same input must always give the same text. Seed from FUZZ_SEED to replay.
 */
import t from "tap";
import {
  compileFullScript,
  compileRemovalScript,
  compileVmScript,
  type VmInput,
} from "../../../proxyvm/firewall/compile.js";
import { type FirewallRule, formatQubesDbRule, parseQubesDbRule } from "../../../shared/firewall/index.js";
import { formatIPv4, formatIPv6, parseCidr4, parseCidr6 } from "../../../shared/net/ip.js";
import { createNetns, inNetns, netnsSkipReason, uniqueName } from "../../helpers/netns.js";

const SEED = Number(process.env["FUZZ_SEED"] ?? 20261203);
const ROUNDS = 60;

/** mulberry32: small, seeded, good enough to pick test cases */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function generator(next: () => number) {
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const hosts = ["a.example", "b.example", "c-d.example", "gone.example"];
  const net4 = () => {
    const c = parseCidr4(`${formatIPv4(int(2 ** 32) >>> 0)}/${pick([0, 8, 16, 24, 30, 32, 32, 32])}`, {
      allowHostBits: true,
    });
    return `${c.address}/${c.prefix}`;
  };
  const net6 = () => {
    const value = (BigInt(int(2 ** 32)) << 96n) | BigInt(int(2 ** 32));
    const c = parseCidr6(`${formatIPv6(value)}/${pick([0, 32, 48, 64, 128, 128])}`, { allowHostBits: true });
    return `${c.address}/${c.prefix}`;
  };
  const rule = (family: 4 | 6): FirewallRule => {
    const options = [`action=${pick(["accept", "drop"])}`];
    const dest = int(6);
    if (dest === 1) options.push(family === 4 ? `dst4=${net4()}` : `dst6=${net6()}`);
    if (dest === 2) options.push(`dsthost=${pick(hosts)}`);
    const proto = pick([undefined, "tcp", "udp", "icmp"]);
    if (proto !== undefined) options.push(`proto=${proto}`);
    if ((proto === "tcp" || proto === "udp") && next() < 0.7) {
      const from = pick([0, 22, 53, 80, 443, 1024, int(65536)]);
      options.push(`dstports=${from}-${Math.min(65535, from + pick([0, 0, 1, 100, 65535]))}`);
    }
    if (proto === "icmp" && next() < 0.6) options.push(`icmptype=${pick([0, 3, 8, 13, 128, 255, int(256)])}`);
    if (dest === 3 && proto !== "icmp") options.push("specialtarget=dns");
    // through the grammar: only what dom0 could publish
    return parseQubesDbRule(formatQubesDbRule(parseQubesDbRule(options.join(" "))));
  };
  const resolved = (family: 4 | 6) =>
    new Map(
      hosts
        .filter((h) => h !== "gone.example")
        .map((h) => [h, Array.from({ length: int(4) }, () => (family === 4 ? net4() : net6()))] as const),
    );
  const vms = (family: 4 | 6): VmInput[] =>
    Array.from({ length: 1 + int(6) }, (_, i) => {
      const address =
        family === 4 ? `10.137.${int(4)}.${i + 2}` : `fd09:24ef:4179::a89:${(i + 2).toString(16)}`;
      if (next() < 0.1) return { address, blocked: "fuzz" };
      return {
        address,
        rules: Array.from({ length: int(40) }, () => rule(family)),
        resolved: resolved(family),
      };
    });
  return { vms };
}

t.test(
  "random valid rule sets compile to scripts nft accepts, deterministically",
  { skip: netnsSkipReason() },
  async (t) => {
    const ns = await createNetns(t, uniqueName("fwz"));
    const gen = generator(random(SEED));
    let checked = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const v4 = gen.vms(4);
      const v6 = gen.vms(6);
      const full = compileFullScript(4, v4).script + compileFullScript(6, v6).script;
      t.equal(
        compileFullScript(4, [...v4].reverse()).script + compileFullScript(6, v6).script,
        full,
        `round ${round}: deterministic`,
      );
      const first4 = v4[0] as VmInput;
      const first6 = v6[0] as VmInput;
      const script = [
        full,
        compileVmScript(4, first4).script,
        compileVmScript(6, first6).script,
        compileRemovalScript(4, first4.address),
        compileRemovalScript(6, first6.address),
      ].join("");
      const result = await inNetns(ns, "nft", ["-c", "-f", "-"], { input: script, reject: false });
      if (result.exitCode !== 0) {
        t.fail(
          `round ${round} (FUZZ_SEED=${SEED}): nft -c refused the script: ${String(result.stderr).slice(0, 2000)}`,
        );
        return;
      }
      checked++;
    }
    t.equal(checked, ROUNDS, `all ${ROUNDS} rounds accepted by nft -c (seed ${SEED})`);
  },
);

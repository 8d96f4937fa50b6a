/**
 * Probe 6: `qvm-features VM net.fake-ip B` on a running client changes what it
 * sees and what upstream sees (its native IP, unchanged), without restarting
 * it and without disturbing the other clients. The old value is put back.
 */
import { runDom0 } from "../dom0.js";
import { describeResult, netIn } from "../net.js";
import type { LabState } from "../state.js";
import { waitUntil } from "../system.js";
import { ECHO_PORT, SERVER_IP } from "../topology.js";
import { describeSeen, seenConfig } from "./config.js";
import { fakeClients, nativeIp, type ProbeResult, probe, serverSaw, token } from "./context.js";

/** the address the probe switches to: next to the shared one, inside the same fake network */
export function alternateIp(ip: string): string {
  const parts = ip.split(".").map(Number);
  const last = parts[3] ?? 0;
  parts[3] = last >= 200 ? last - 100 : last + 100;
  return parts.join(".");
}

export interface FakeIpChange {
  /** ms from qvm-features returning to the client seeing the address */
  readonly ms: number;
  readonly seen: string;
  /** whether the client then reached the server, and as whom */
  readonly reached: boolean;
  readonly upstream: string[];
}

/** Sets a client's fake IP, waits until it sees it, then checks it reaches the server. */
export async function changeFakeIp(state: LabState, name: string, ip: string): Promise<FakeIpChange> {
  const client = fakeClients(state).find((c) => c.name === name);
  if (client === undefined) throw new Error(`Cannot change the fake IP of "${name}": not a fake-IP client`);
  await runDom0(state, "qvm-features", ["--qubes-dir", state.qubesDir, name, "net.fake-ip", ip]);
  const started = Date.now();
  const seen = await waitUntil(
    `${name} to see ${ip} on eth0`,
    async () => {
      const config = await seenConfig(client.ns);
      // complete: the new address and the default route back (the old address took it along)
      return config.addresses.some((a) => a.startsWith(`${ip}/`)) && config.gateway !== undefined
        ? config
        : undefined;
    },
    3000,
    20,
  );
  const ms = Date.now() - started;
  const tok = token("live");
  const reached = await waitUntil(
    `${name} to reach the server from ${ip}`,
    async () => {
      const [echo] = await netIn(client.ns, [
        { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: tok, timeoutMs: 300 },
      ]);
      return echo?.ok === true;
    },
    2000,
    20,
  ).catch(() => false);
  return { ms, seen: describeSeen(seen), reached, upstream: serverSaw(state, tok) };
}

/** Puts a fake IP back (best effort: the probe's own result already says what went wrong). */
export async function restoreFakeIp(
  state: LabState,
  name: string,
  ip: string,
): Promise<FakeIpChange | undefined> {
  return changeFakeIp(state, name, ip).catch(() => undefined);
}

export function probeLiveChange(state: LabState): Promise<ProbeResult> {
  return probe(
    "changing net.fake-ip on a running client changes what it and upstream see, others undisturbed",
    async () => {
      const clients = fakeClients(state);
      const target = clients[clients.length - 1];
      const bystanders = clients.filter((c) => c !== target);
      if (target === undefined) return { ok: false, observed: "no fake-IP client in this lab" };
      const original = target.features["net.fake-ip"] ?? "";
      const native = nativeIp(state, target.name);
      const before = await Promise.all(bystanders.map(async (c) => describeSeen(await seenConfig(c.ns))));
      const next = alternateIp(original);
      let changed: FakeIpChange;
      let restored: FakeIpChange | undefined;
      let after: string[];
      let echoes: Awaited<ReturnType<typeof netIn>>[];
      try {
        changed = await changeFakeIp(state, target.name, next);
        after = await Promise.all(bystanders.map(async (c) => describeSeen(await seenConfig(c.ns))));
        echoes = await Promise.all(
          bystanders.map((c) =>
            netIn(c.ns, [{ kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: token("bystander") }]),
          ),
        );
      } finally {
        restored = await restoreFakeIp(state, target.name, original);
      }
      const undisturbed = before.every((b, i) => b === after[i]) && echoes.every((e) => e[0]?.ok === true);
      const ok =
        changed.reached &&
        undisturbed &&
        changed.upstream.length === 1 &&
        changed.upstream[0] === native &&
        restored?.reached === true;
      const reach = changed.reached
        ? `upstream saw ${changed.upstream.join(",") || "nothing"}`
        : "then could NOT reach the server";
      const others = undisturbed
        ? `${bystanders.map((b) => b.name).join(", ")} undisturbed`
        : `others DISTURBED (before ${before.join(" | ")}; after ${after.join(" | ")}; echo ${echoes.map((e) => describeResult(e[0])).join(",")})`;
      return {
        ok,
        observed: `${target.name} ${original} → ${next}: sees ${changed.seen} after ${changed.ms} ms, ${reach}; ${others}; ${
          restored ? `restored ${original} in ${restored.ms} ms` : `could NOT restore ${original}`
        }`,
      };
    },
  );
}

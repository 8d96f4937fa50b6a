/**
 * Probe 5: a rule added with `qvm-firewall` takes effect within a second and
 * a reject is seen as administratively prohibited; `set` replaces the list;
 * a broken rule set blocks that VM only and its reason is published in
 * `/qubes-firewall-error/N`. The VM's rules are reset afterwards.
 */

import { startCapture } from "../capture.js";
import { firewallError, publishBrokenRules, qvmFirewall, setRules } from "../firewall.js";
import { describeResult, type NetAction, type NetResult, netIn } from "../net.js";
import { framesContaining, icmpName, summarizeFrame } from "../pcap.js";
import type { LabState } from "../state.js";
import { sleep, waitUntil } from "../system.js";
import { ECHO_PORT, HTTP_PORT, SERVER_IP } from "../topology.js";
import { clients, fakeClients, nativeIp, type ProbeResult, probe, proxyNs } from "./context.js";
import { measureEffect } from "./measure.js";

/** the probe's promise: a change is visible in packets within this time */
export const EFFECT_WITHIN_MS = 1000;

const echo: NetAction = { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: "fw", timeoutMs: 300 };
const web: NetAction = { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: "/fw", timeoutMs: 300 };
export const BLOCK_WEB = ["action=drop", "proto=tcp", `dst4=${SERVER_IP}`, `dstports=${HTTP_PORT}`];

/** Polls until the echo/web outcome of `ns` is `want`; ms it took, and the last web result. */
export async function waitForOutcome(ns: string, want: { echo: boolean; web: boolean }, timeoutMs = 2000) {
  const started = Date.now();
  const last = await waitUntil(
    `echo=${want.echo} web=${want.web}`,
    async () => {
      const [e, w] = await netIn(ns, [echo, web], true);
      return e?.ok === want.echo && w?.ok === want.web ? { e, w } : undefined;
    },
    timeoutMs,
    20,
  );
  return { ms: Date.now() - started, web: last.w };
}

/**
 * A blocked web request as the client's kernel receives it. The socket error is
 * not enough: on veth the ICMP answer arrives while connect() still holds the
 * socket lock, and Linux then keeps it only as a soft error (TcpExtLockDroppedIcmps)
 * and lets connect() time out. So the frames themselves are checked.
 */
async function seeReject(
  target: { ns: string; vif: string },
  proxyNs: string,
  native: string,
): Promise<{ prohibited: boolean; leaks: boolean; icmp: string[]; sent: string[]; result: string }> {
  let seen = { prohibited: false, leaks: false, icmp: [] as string[], sent: [] as string[], result: "" };
  for (let attempt = 0; attempt < REJECT_ATTEMPTS && !seen.prohibited; attempt++) {
    // The sampler before this drew many rejects: the ProxyVM's kernel rate-limits
    // ICMP errors per destination (icmp_ratelimit, 1 s per token, burst 6).
    await sleep(attempt === 0 ? ICMP_TOKEN_MS : ICMP_TOKEN_MS / 2);
    const once = await rejectOnce(target, proxyNs, native);
    seen = { ...once, leaks: seen.leaks || once.leaks };
  }
  return seen;
}

async function rejectOnce(target: { ns: string; vif: string }, proxyNs: string, native: string) {
  const capture = await startCapture(target.ns, "eth0", "in");
  // The ProxyVM's side only explains a missing reject: optional.
  const proxy = await startCapture(proxyNs, target.vif, "out").catch(() => undefined);
  let frames: Buffer[] = [];
  let proxyFrames: Buffer[] = [];
  let result: NetResult | undefined;
  try {
    [result] = await netIn(target.ns, [web]);
  } finally {
    frames = await capture.stop();
    proxyFrames = (await proxy?.stop()) ?? [];
  }
  const icmpOf = (list: Buffer[]) =>
    list.flatMap((f) => {
      const s = summarizeFrame(f);
      return s?.icmp ? [icmpName(s.icmp.type, s.icmp.code)] : [];
    });
  const icmp = icmpOf(frames);
  return {
    prohibited: icmp.includes("admin-prohibited"),
    leaks: framesContaining(frames, native).length > 0,
    icmp,
    sent: icmpOf(proxyFrames),
    result: describeResult(result),
  };
}

/** a reject suppressed by the rate limit is tried again, up to this many times in all */
const REJECT_ATTEMPTS = 3;
/** two tokens of Linux's per-destination ICMP rate limit (net.ipv4.icmp_ratelimit, default 1000 ms) */
const ICMP_TOKEN_MS = 2100;

export function describeEffect(ms: number | undefined): string {
  return ms === undefined ? "did NOT take effect" : `took effect after ${ms} ms`;
}

export function probeFirewall(state: LabState): Promise<ProbeResult> {
  return probe(
    "firewall: rules bite within a second, reject is admin-prohibited, set replaces, broken rules fail closed for that VM only",
    async () => {
      const target = fakeClients(state)[1] ?? clients(state)[0];
      const bystander = clients(state).find((c) => c !== target);
      if (target === undefined || bystander === undefined)
        return { ok: false, observed: "needs two clients" };
      const native = nativeIp(state, target.name);
      const notes: string[] = [];
      let ok = true;
      try {
        await qvmFirewall(state, target.name, ["reset"]);
        await waitForOutcome(target.ns, { echo: true, web: true });
        const added = await measureEffect(
          target.ns,
          web,
          (r) => !r.ok,
          () => qvmFirewall(state, target.name, ["add", "--before", "0", ...BLOCK_WEB]),
        );
        const stillEcho = await waitForOutcome(target.ns, { echo: true, web: false }).then(
          () => true,
          () => false,
        );
        const reject = await seeReject(target, proxyNs(state), native);
        ok &&=
          added.ms !== undefined &&
          added.ms <= EFFECT_WITHIN_MS &&
          reject.prohibited &&
          !reject.leaks &&
          stillEcho;
        notes.push(
          `drop tcp/${HTTP_PORT} ${describeEffect(added.ms)} (web ${describeResult(added.last)}; client received ${
            reject.prohibited
              ? "ICMP admin-prohibited"
              : `NO admin-prohibited (web ${reject.result}; ICMP received: ${reject.icmp.join(",") || "none"}; ICMP the ProxyVM sent towards it: ${reject.sent.join(",") || "none"})`
          }${reject.leaks ? " CARRYING THE NATIVE IP" : ""}; echo ${stillEcho ? "still works" : "BROKEN"})`,
        );

        // set: from "echo only" to "web only" in one step; a UDP echo, forbidden by
        // both lists, is sampled throughout and must never pass (no gap while swapping).
        await setRules(state, target.name, [
          `action=accept proto=tcp dst4=${SERVER_IP} dstports=${ECHO_PORT}`,
          "action=drop",
        ]);
        await waitForOutcome(target.ns, { echo: true, web: false });
        const set = await measureEffect(
          target.ns,
          web,
          (r) => r.ok,
          () =>
            setRules(state, target.name, [
              `action=accept proto=tcp dst4=${SERVER_IP} dstports=${HTTP_PORT}`,
              "action=drop",
            ]),
          { guard: { kind: "udp", host: SERVER_IP, port: ECHO_PORT, data: "guard", timeoutMs: 200 } },
        );
        const swapped = await waitForOutcome(target.ns, { echo: false, web: true }).then(
          () => true,
          () => false,
        );
        ok &&= set.ms !== undefined && set.ms <= EFFECT_WITHIN_MS && swapped && set.guardPassed === 0;
        notes.push(
          `set (echo only → web only) ${describeEffect(set.ms)}${swapped ? "" : " but echo still passes"}; udp, forbidden by both, passed ${set.guardPassed} of ${set.guardSamples} samples`,
        );

        await publishBrokenRules(state, native);
        const reason = await waitUntil(
          "the agent to report the broken rule",
          async () => (await firewallError(state, native)) || undefined,
          3000,
          20,
        );
        const [blocked, other] = await Promise.all([
          netIn(target.ns, [echo, web], true),
          netIn(bystander.ns, [echo]),
        ]);
        const failsClosed = blocked.every((r) => !r.ok);
        const othersFine = other[0]?.ok === true;
        ok &&= failsClosed && othersFine;
        notes.push(
          `broken rule: ${target.name} ${failsClosed ? "blocked" : "NOT blocked"}, ${bystander.name} ${othersFine ? "unaffected" : "AFFECTED"}, /qubes-firewall-error/${native} = "${reason}"`,
        );
      } finally {
        await qvmFirewall(state, target.name, ["reset"]).catch(() => undefined);
      }
      const reset = await waitForOutcome(target.ns, { echo: true, web: true }).catch(() => undefined);
      const cleared = (await firewallError(state, native).catch(() => undefined)) ?? "";
      ok &&= reset !== undefined && cleared === "";
      notes.push(
        reset
          ? `reset restored traffic${cleared ? ` but error still "${cleared}"` : ""}`
          : "reset did NOT restore traffic",
      );
      return { ok, observed: `${target.name}: ${notes.join("; ")}` };
    },
  );
}

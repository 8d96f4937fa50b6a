/**
 * Probe 7: the agent is SIGKILLed mid-traffic and the lab's supervisor
 * restarts it: traffic resumes, the state converges, and no sample ever gets
 * through what the client's firewall forbids (the kernel keeps the data plane
 * while the agent is gone; the new agent must not open a gap while rebuilding).
 */
import { join } from "node:path";
import { qvmFirewall } from "../firewall.js";
import { type NetAction, netIn } from "../net.js";
import type { LabState } from "../state.js";
import { isAlive, livePid, sleep, waitUntil } from "../system.js";
import { ECHO_PORT, HTTP_PORT, SERVER_IP } from "../topology.js";
import { clients, fakeClients, type ProbeResult, probe, serverSaw, token } from "./context.js";
import { BLOCK_WEB, waitForOutcome } from "./firewall.js";

/**
 * Paced sampling: SAMPLES pairs (allowed echo, forbidden web) started PACE_MS
 * apart, 3 s in all: it covers the kill, the restart and the new agent's
 * first convergence (its rebuild is where a gap would open).
 */
const SAMPLES = 60;
const PACE_MS = 50;
/** when the kill happens, after sampling started (the sampler needs ~200 ms to start) */
const KILL_AFTER_MS = 600;

export function agentPidFile(state: LabState): string {
  return join(state.dir, "pids", "agent.pid");
}

export function probeAgentRestart(state: LabState): Promise<ProbeResult> {
  return probe(
    "agent SIGKILLed mid-traffic: restarted, traffic resumes, the firewall never opens",
    async () => {
      const target = fakeClients(state)[1] ?? clients(state)[0];
      if (target === undefined) return { ok: false, observed: "no client in this lab" };
      const marker = state.dir;
      const before = livePid(agentPidFile(state), marker);
      if (before === undefined) return { ok: false, observed: "the agent is not running (see up)" };
      try {
        await qvmFirewall(state, target.name, ["add", "--before", "0", ...BLOCK_WEB]);
        await waitForOutcome(target.ns, { echo: true, web: false });
        const tokens = Array.from({ length: SAMPLES }, (_, i) => token(`restart-${i}`));
        const actions: NetAction[] = tokens.flatMap((tok, i) => [
          { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: tok, timeoutMs: 300, pauseMs: i * PACE_MS },
          {
            kind: "http",
            host: SERVER_IP,
            port: HTTP_PORT,
            data: `/${tok}`,
            timeoutMs: 300,
            pauseMs: i * PACE_MS,
          },
        ]);
        const sampling = netIn(target.ns, actions, true);
        await sleep(KILL_AFTER_MS);
        const killedAt = Date.now();
        process.kill(before, "SIGKILL");
        const after = await waitUntil(
          "the supervisor to restart the agent",
          () => {
            const pid = livePid(agentPidFile(state), marker);
            return pid !== undefined && pid !== before && isAlive(pid) ? pid : undefined;
          },
          5000,
          20,
        );
        const restartedMs = Date.now() - killedAt;
        const samples = await sampling;
        const allowed = samples.filter((_, i) => i % 2 === 0);
        const leaked = tokens.filter(
          (tok, i) => samples[2 * i + 1]?.ok === true || serverSaw(state, `/${tok}`).length > 0,
        );
        const afterKill = allowed.filter((s) => (s.startedAt ?? 0) > killedAt);
        const lost = afterKill.filter((s) => !s.ok).length;
        // converged: every client works again, and the rule still holds for the target
        const [tail] = await Promise.all([
          waitForOutcome(target.ns, { echo: true, web: false }, 5000).then(
            () => true,
            () => false,
          ),
        ]);
        const others = await Promise.all(
          clients(state)
            .filter((c) => c !== target)
            .map((c) => netIn(c.ns, [{ kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: "again" }])),
        );
        const othersOk = others.every((r) => r[0]?.ok === true);
        const resumed = afterKill.length > 0 && afterKill[afterKill.length - 1]?.ok === true;
        return {
          ok: leaked.length === 0 && resumed && tail && othersOk,
          observed: `agent pid ${before} killed, restarted as ${after} after ${restartedMs} ms; ${samples.length / 2} sample pairs: forbidden web got through ${leaked.length} times, allowed echo failed ${lost}/${afterKill.length} after the kill, ${resumed ? "resumed" : "did NOT resume"}; afterwards rule ${tail ? "holds" : "LOST"}, other clients ${othersOk ? "fine" : "BROKEN"}`,
        };
      } finally {
        await qvmFirewall(state, target.name, ["reset"]).catch(() => undefined);
      }
    },
  );
}

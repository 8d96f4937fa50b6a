/**
 * Probe 3: clients sharing a fake IP work at the same time, each seen
 * upstream as itself; they cannot reach each other; the ProxyVM reaches each
 * by its native IP.
 */
import { describeResult, netIn } from "../net.js";
import type { LabState } from "../state.js";
import { ECHO_PORT, SERVER_IP } from "../topology.js";
import {
  clients,
  fakeClients,
  nativeIp,
  type ProbeResult,
  ping,
  probe,
  proxyNs,
  serverSaw,
  token,
} from "./context.js";

export function probeIsolation(state: LabState): Promise<ProbeResult> {
  return probe(
    "clients sharing a fake IP work concurrently, cannot reach each other, and are reachable by native IP",
    async () => {
      const sharing = fakeClients(state);
      if (sharing.length < 2)
        return {
          ok: false,
          observed: `only ${sharing.length} fake-IP client(s): need 2 to share an address`,
        };
      const tokens = sharing.map((c) => token(`share-${c.name}`));
      const results = await Promise.all(
        sharing.map((c, i) =>
          netIn(c.ns, [
            { kind: "tcp", host: SERVER_IP, port: ECHO_PORT, data: tokens[i] ?? "", timeoutMs: 2000 },
          ]),
        ),
      );
      let ok = true;
      const served = sharing.map((c, i) => {
        const seen = serverSaw(state, tokens[i] ?? "");
        const right =
          results[i]?.[0]?.ok === true && seen.length === 1 && seen[0] === nativeIp(state, c.name);
        ok &&= right;
        return `${c.name} ${results[i]?.[0]?.ok ? `as ${seen.join(",") || "?"}` : describeResult(results[i]?.[0])}`;
      });
      // Each client tries every other client's native IP (ping and TCP); nothing may answer.
      // Each sharing client pings every other client's native IP (all at once); no reply may come.
      const pairs = sharing.slice(0, 2).flatMap((from) =>
        clients(state)
          .filter((to) => to !== from)
          .map((to) => [from, to] as const),
      );
      const answered = await Promise.all(
        pairs.map(async ([from, to]) =>
          (await ping(from.ns, nativeIp(state, to.name))) ? `${from.name} → ${to.name}` : undefined,
        ),
      );
      const crossings = answered.filter((p): p is string => p !== undefined);
      ok &&= crossings.length === 0;
      const reach = await Promise.all(
        clients(state).map(
          async (c) => [c.name, await ping(proxyNs(state), nativeIp(state, c.name))] as const,
        ),
      );
      const unreachable = reach.filter(([, r]) => !r).map(([n]) => n);
      ok &&= unreachable.length === 0;
      return {
        ok,
        observed: [
          `served concurrently: ${served.join(", ")}`,
          crossings.length === 0
            ? `${pairs.length} pings between clients' native IPs went unanswered`
            : `REACHED: ${crossings.join(", ")}`,
          unreachable.length === 0
            ? `ProxyVM pings all ${reach.length} by native IP`
            : `ProxyVM cannot ping ${unreachable.join(", ")}`,
        ].join("; "),
      };
    },
  );
}

/**
 * Probe 4: a client sending from a forged source address gets nothing
 * through — not another VM's native IP, not its own native IP (only the NAT
 * may produce that), not an address from nowhere.
 */
import { netIn } from "../net.js";
import type { LabState } from "../state.js";
import { ipIn, sleep } from "../system.js";
import { ECHO_PORT, SERVER_IP } from "../topology.js";
import { clients, fakeClients, nativeIp, type ProbeResult, probe, serverSaw, token } from "./context.js";

/** an address no VM has, inside Qubes' native range */
const NOWHERE = "10.137.0.250";

export function probeSpoof(state: LabState): Promise<ProbeResult> {
  return probe("a client sending from a forged source address gets nothing through", async () => {
    const client = fakeClients(state)[0] ?? clients(state)[0];
    if (client === undefined) return { ok: false, observed: "no client in this lab" };
    const other = clients(state).find((c) => c.name !== client.name);
    const forged = [
      ...(other ? [[`${other.name}'s native IP`, nativeIp(state, other.name)]] : []),
      [`its own native IP`, nativeIp(state, client.name)],
      ["an unassigned address", NOWHERE],
    ].filter(([, ip]) => ip !== undefined) as Array<[string, string]>;
    const tokens = forged.map(([label]) => token(`spoof-${label.replace(/\W+/g, "-")}`));
    // The forged addresses go on eth0 only for this probe, like a VM that took them itself.
    for (const [, ip] of forged) await ipIn(client.ns, ["addr", "add", `${ip}/32`, "dev", "eth0"]);
    try {
      await netIn(
        client.ns,
        forged.flatMap(([, ip], i) => [
          {
            kind: "udp" as const,
            host: SERVER_IP,
            port: ECHO_PORT,
            data: tokens[i] ?? "",
            source: ip,
            timeoutMs: 300,
          },
          {
            kind: "tcp" as const,
            host: SERVER_IP,
            port: ECHO_PORT,
            data: tokens[i] ?? "",
            source: ip,
            timeoutMs: 300,
          },
        ]),
        true,
      );
      await sleep(100);
    } finally {
      for (const [, ip] of forged)
        await ipIn(client.ns, ["addr", "del", `${ip}/32`, "dev", "eth0"]).catch(() => undefined);
    }
    // The control: the same exchange from the client's real address must arrive,
    // else "nothing got through" would prove nothing.
    const control = token("spoof-control");
    await netIn(client.ns, [
      { kind: "udp", host: SERVER_IP, port: ECHO_PORT, data: control, timeoutMs: 1000 },
    ]);
    const controlArrived = serverSaw(state, control).length > 0;
    const through = forged
      .filter((_, i) => serverSaw(state, tokens[i] ?? "").length > 0)
      .map(([label, ip]) => `${label} ${ip}`);
    const forgedText = forged.map(([l, ip]) => `${l} ${ip}`).join(", ");
    return {
      ok: through.length === 0 && controlArrived,
      observed: !controlArrived
        ? `${client.name}'s control datagram from its own address did not arrive either: cannot tell spoofing from a broken path`
        : through.length === 0
          ? `${client.name} forged ${forgedText}: the server saw none of it (a control from its real address arrived)`
          : `${client.name} got through with ${through.join(", ")}`,
    };
  });
}

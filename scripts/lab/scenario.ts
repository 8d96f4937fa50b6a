/**
 * The demo's story, told with the project's own commands and real packets:
 * two VMs share a fake IP, a firewall rule bites, a fake IP changes live.
 * Each step reports what it saw, or why it could not.
 */
import { describeError } from "../../shared/errors.js";
import { qvmFirewall } from "./firewall.js";
import { describeResult, netIn } from "./net.js";
import { describeSeen, seenConfig } from "./probes/config.js";
import { fakeClients, nativeIp } from "./probes/context.js";
import { BLOCK_WEB } from "./probes/firewall.js";
import { alternateIp, changeFakeIp, restoreFakeIp } from "./probes/live-change.js";
import { measureEffect } from "./probes/measure.js";
import { paint, type Style } from "./report.js";
import type { LabState } from "./state.js";
import { HTTP_PORT, SERVER_IP } from "./topology.js";

export interface Narrator {
  readonly write: (line: string) => void;
  readonly narrate: (text: string) => void;
  readonly style: Style;
}

async function attempt(n: Narrator, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    n.write(paint(n.style, "red", `  ✗ ${describeError(error)}`));
  }
}

export async function runScenario(state: LabState, n: Narrator): Promise<void> {
  const [a, b] = fakeClients(state);
  if (a === undefined || b === undefined) {
    n.write("  (the scenario needs two fake-IP clients)");
    return;
  }
  const cmd = (text: string): void => n.write(paint(n.style, "dim", `  $ ${text}`));

  n.narrate(`${a.name} and ${b.name} got the same fake IP from dom0, like Whonix workstations`);
  cmd(
    `qvm-features ${a.name} net.fake-ip ${a.features["net.fake-ip"]}   (and net.fake-gateway, net.fake-netmask; same for ${b.name})`,
  );
  await attempt(n, async () => {
    for (const vm of [a, b]) {
      const [reply] = await netIn(vm.ns, [
        { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: "/whoami" },
      ]);
      const upstream = reply?.ok ? (reply.reply ?? "").trim().replace(/^peer=/, "") : describeResult(reply);
      n.write(
        `  ${vm.name} sees ${describeSeen(await seenConfig(vm.ns))}; the server at ${SERVER_IP} saw ${upstream} (native ${nativeIp(state, vm.name)})`,
      );
    }
  });

  n.narrate(`A firewall rule for ${b.name}: no web to ${SERVER_IP}`);
  cmd(`qvm-firewall ${b.name} add --before 0 ${BLOCK_WEB.join(" ")}`);
  await attempt(n, async () => {
    try {
      const bit = await measureEffect(
        b.ns,
        { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: "/blocked" },
        (r) => !r.ok,
        () => qvmFirewall(state, b.name, ["add", "--before", "0", ...BLOCK_WEB]),
      );
      const [other] = await netIn(a.ns, [
        { kind: "http", host: SERVER_IP, port: HTTP_PORT, data: "/still-fine" },
      ]);
      n.write(
        bit.ms === undefined
          ? `  the rule did not take effect: ${b.name}'s web still works`
          : `  ${bit.ms} ms after qvm-firewall returned, ${b.name}'s web requests fail (${describeResult(bit.last)})`,
      );
      n.write(`  ${a.name}, same fake IP, is unaffected: web ${describeResult(other)}`);
    } finally {
      await qvmFirewall(state, b.name, ["reset"]).catch(() => undefined);
    }
  });

  const original = a.features["net.fake-ip"] ?? "";
  const next = alternateIp(original);
  n.narrate(`Changing ${a.name}'s fake IP while it runs`);
  cmd(`qvm-features ${a.name} net.fake-ip ${next}`);
  await attempt(n, async () => {
    try {
      const changed = await changeFakeIp(state, a.name, next);
      n.write(
        `  ${changed.ms} ms later ${a.name} sees ${changed.seen}, no restart; ${
          changed.reached
            ? `upstream still sees ${changed.upstream.join(",")}`
            : "but it cannot reach the server"
        }`,
      );
    } finally {
      const back = await restoreFakeIp(state, a.name, original);
      n.write(back ? `  and back to ${original} in ${back.ms} ms` : `  could not put ${original} back`);
    }
  });
}

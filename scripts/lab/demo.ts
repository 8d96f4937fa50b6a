/**
 * `lab demo`: up → a narrated scenario → every probe → down, in well under a
 * minute. `down` always runs, also after a failure or Ctrl-C. Exit status is
 * the number of failed probes (1 when the lab could not be built).
 */
import { describeError, SystemError } from "../../shared/errors.js";
import { down } from "./down.js";
import { findLeftovers, runProbes } from "./probes.js";
import { formatProbe, formatSummary, paint, type Style, terminalStyle } from "./report.js";
import { runScenario } from "./scenario.js";
import { type LabState, loadState, stopCreation } from "./state.js";
import { sleep, waitUntil } from "./system.js";
import { DEFAULT_CLIENTS, DEFAULT_FAKE_GATEWAY, DEFAULT_FAKE_IP, DEFAULT_FAKE_NETMASK } from "./topology.js";
import { up } from "./up.js";

export async function runDemo(
  dir: string,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const style: Style = terminalStyle();
  const existing = loadState(dir);
  if (existing !== undefined) {
    // Someone's lab (maybe a demo killed with SIGKILL): never take it down unasked.
    throw new SystemError(
      `Cannot run the demo in "${dir}": lab ${existing.id} is there already; run "qubes-fakeip-lab down --dir ${dir}" first`,
    );
  }
  const narrate = (text: string): void => write(`\n${paint(style, "cyan", `▸ ${text}`)}`);
  let tearingDown: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    tearingDown ??= (async () => {
      stopCreation();
      narrate("Taking the lab down");
      const state = loadState(dir);
      const report = await down(dir);
      for (const failure of report.failures) write(`  ${failure}`);
      if (state !== undefined) {
        // A command `up` was running when interrupted may take a moment to exit.
        const left = await waitUntil(
          "the lab's last processes to exit",
          () => {
            const found = findLeftovers(state);
            return found.processes.length === 0 ? found : undefined;
          },
          2000,
          50,
        ).catch(() => findLeftovers(state));
        const count = left.namespaces.length + left.processes.length + left.sockets.length;
        write(
          count === 0
            ? `  removed ${report.removedNamespaces.length} namespaces and ${report.stopped.length} processes; nothing left behind`
            : paint(
                style,
                "red",
                `  LEFT BEHIND: ${[...left.namespaces, ...left.processes.map((p) => `pid ${p.pid}`), ...left.sockets].join(", ")}`,
              ),
        );
      }
    })();
    return tearingDown;
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    write(`\n${signal}: stopping`);
    // Give in-flight creations a moment to record themselves, then remove everything.
    void sleep(100)
      .then(teardown)
      .finally(() => process.exit(130));
  };
  // `on`, not `once`: execa's signal-exit re-raises a signal that has no other
  // listener left, which would kill the demo before `down` ran.
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    narrate(
      "Building the lab: dom0's store, sys-net with a test server, sys-firewall running the agent, three anonymous VMs sharing one fake IP and one ordinary VM",
    );
    const state: LabState = await up(
      {
        dir,
        clients: DEFAULT_CLIENTS,
        fakeIp: DEFAULT_FAKE_IP,
        fakeGateway: DEFAULT_FAKE_GATEWAY,
        fakeNetmask: DEFAULT_FAKE_NETMASK,
      },
      (line) => write(line),
    );
    await runScenario(state, { write, narrate, style });
    narrate("Every end-to-end probe, with real packets");
    const results = await runProbes(state, (r) => write(formatProbe(style, r)));
    write(formatSummary(style, results));
    return Math.min(results.filter((r) => !r.ok).length, 125);
  } catch (error) {
    write(paint(style, "red", `demo stopped: ${describeError(error)}`));
    return 1;
  } finally {
    await teardown();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

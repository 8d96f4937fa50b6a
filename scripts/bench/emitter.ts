/**
 * Emitter benchmark (issue 3): the 300-VM topology (one ProxyVM, 299
 * clients, 50 firewall rules each) published into real QubesDB daemons.
 *
 *  1. first full publication into empty daemons, against the reference: a
 *     plain client that already knows the keys connects to every VM, writes
 *     them pipelined (all VMs at once) into a second, equally empty set of
 *     daemons, and closes — in the same run. Measured twice: the emitter
 *     proper (connect, plan, read each DB, diff, write, close) and end to end
 *     as `qubes-fakeip-dom0 sync` (plus reading qubes.xml and 299 firewall.xml);
 *  2. a no-op sync (must write 0 keys);
 *  3. one feature changed on one client (publishChange, as qvm-features does).
 *
 * Each round empties both sets of daemons first; the best of ROUNDS is kept.
 * Run after `npm run build`: node dist/scripts/bench/emitter.js
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { planKeys } from "../../dom0/emitter/plan.js";
import {
  applyPlan,
  closeAll,
  connectRunning,
  publishAll,
  publishChange,
} from "../../dom0/emitter/publish.js";
import { readCollection } from "../../dom0/model/collection.js";
import { setFeature } from "../../dom0/model/edit.js";
import { readStore, withStore } from "../../dom0/store/store.js";
import { silentLogger } from "../../shared/log.js";
import type { QubesDbClient } from "../../shared/qubesdb/types.js";
import { buildTopologyStore, clientName, clientRules, PROXY, startDaemons } from "./emitter-topology.js";

const CLIENTS = 299;
const RULES = 50;
const ROUNDS = 5;
const NOW = Math.floor(Date.now() / 1000);

async function clear(clients: ReadonlyMap<string, QubesDbClient>): Promise<void> {
  await Promise.all([...clients.values()].map((client) => client.rm("/")));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-emitter-"));
  const qubesDir = join(dir, "qubes");
  const emitterRun = join(dir, "run-emitter");
  const rawRun = join(dir, "run-raw");
  const names = [PROXY, ...Array.from({ length: CLIENTS }, (_, i) => clientName(i + 1))];
  await buildTopologyStore(qubesDir, CLIENTS, RULES, NOW);
  const emitterDaemons = await startDaemons(emitterRun, names);
  const rawDaemons = await startDaemons(rawRun, names);
  const rawClients = await connectRunning(rawRun, names);
  const emitterClients = await connectRunning(emitterRun, names);
  try {
    const collection = readCollection(await readStore(qubesDir));
    const firewall = new Map(names.slice(1).map((name, i) => [name, clientRules(i + 1, RULES)]));
    const plan = planKeys({ collection, firewall, now: NOW, running: new Set(names) });
    const keyCount = [...plan.values()].reduce((sum, keys) => sum + keys.size, 0);
    const ctx = { qubesDir, runDir: emitterRun, now: NOW };

    let bestRaw = Number.POSITIVE_INFINITY;
    let bestEmitter = Number.POSITIVE_INFINITY;
    let bestEndToEnd = Number.POSITIVE_INFINITY;
    let coldEndToEnd = 0;
    let fullWrites = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Reference: a plain client that already knows the keys connects, writes them pipelined, closes.
      await clear(rawClients);
      let start = performance.now();
      const raw = await connectRunning(rawRun, names);
      await Promise.all(
        [...plan].map(([name, keys]) => {
          const client = raw.get(name)!;
          return Promise.all([...keys].map(([key, value]) => client.write(key, value)));
        }),
      );
      await closeAll(raw);
      bestRaw = Math.min(bestRaw, performance.now() - start);

      // The emitter proper, from the loaded collection and rules: connect, plan, read, diff, write.
      await clear(emitterClients);
      start = performance.now();
      const connected = await connectRunning(emitterRun, names);
      const planned = planKeys({ collection, firewall, now: NOW, running: new Set(connected.keys()) });
      const report = await applyPlan(planned, connected, planned.keys(), silentLogger);
      await closeAll(connected);
      bestEmitter = Math.min(bestEmitter, performance.now() - start);
      fullWrites = report.writes;
      if (report.errors.length > 0) throw new Error(report.errors.join("\n"));

      // End to end, as `qubes-fakeip-dom0 sync`: also reads qubes.xml and the 299 firewall.xml
      // (round 1 parses them all; later rounds, like `serve`, only stat them).
      await clear(emitterClients);
      start = performance.now();
      const full = await publishAll(ctx, readCollection(await readStore(qubesDir)));
      const elapsed = performance.now() - start;
      if (round === 0) coldEndToEnd = elapsed;
      bestEndToEnd = Math.min(bestEndToEnd, elapsed);
      if (full.writes !== fullWrites)
        throw new Error(`publishAll wrote ${full.writes} keys, expected ${fullWrites}`);
    }

    let start = performance.now();
    const noop = await publishAll(ctx, readCollection(await readStore(qubesDir)));
    const noopMs = performance.now() - start;

    const before = readCollection(await readStore(qubesDir));
    const after = await withStore(qubesDir, (doc) => {
      setFeature(doc, clientName(17), "net.fake-ip", "10.152.152.11");
      return readCollection(doc);
    });
    start = performance.now();
    const change = await publishChange(ctx, before, after, { touched: [clientName(17)] });
    const changeMs = performance.now() - start;

    const rows: Array<[string, string, string]> = [
      ["raw client writes (reference)", `${bestRaw.toFixed(0)} ms`, `${keyCount} writes`],
      ["full publication, emitter", `${bestEmitter.toFixed(0)} ms`, `${fullWrites} writes`],
      [
        "full publication, end to end",
        `${bestEndToEnd.toFixed(0)} ms`,
        `(first run, files parsed: ${coldEndToEnd.toFixed(0)} ms)`,
      ],
      ["no-op sync", `${noopMs.toFixed(0)} ms`, `${noop.writes} writes, ${noop.removes} removes`],
      [
        "one feature on one client",
        `${changeMs.toFixed(0)} ms`,
        `${change.writes} writes, ${change.removes} removes`,
      ],
    ];
    process.stdout.write(
      `emitter: ${names.length} VMs (1 ProxyVM, ${CLIENTS} clients, ${RULES} rules each), best of ${ROUNDS}\n`,
    );
    for (const [what, time, writes] of rows)
      process.stdout.write(`  ${what.padEnd(32)} ${time.padStart(9)}  ${writes}\n`);
    process.stdout.write(
      `  ratio raw writes / emitter publication: ${(bestRaw / bestEmitter).toFixed(2)} (aim >= 0.8; 1.0 = no overhead)\n` +
        `  ratio raw writes / end-to-end publication: ${(bestRaw / bestEndToEnd).toFixed(2)} (first run: ${(bestRaw / coldEndToEnd).toFixed(2)})\n`,
    );
  } finally {
    await closeAll(rawClients);
    await closeAll(emitterClients);
    await emitterDaemons.stop();
    await rawDaemons.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * Integration: the 300-VM topology of issue 3 (one ProxyVM, 299 clients, 50
 * firewall rules each) published into real QubesDB daemons; then a no-op
 * sync and single changes, counting exactly which keys were written.
 * Needs `npm run build` (the daemons run from dist/).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import t from "tap";
import { planKeys } from "../../../dom0/emitter/plan.js";
import { publishAll, publishChange } from "../../../dom0/emitter/publish.js";
import { readCollection } from "../../../dom0/model/collection.js";
import { setFeature } from "../../../dom0/model/edit.js";
import { readStore, withStore } from "../../../dom0/store/store.js";
import {
  buildTopologyStore,
  clientName,
  clientRules,
  PROXY,
  startDaemons,
  TEMPLATE,
} from "../../../scripts/bench/emitter-topology.js";
import { connectQubesDb } from "../../../shared/qubesdb/client.js";
import type { QubesDbClient } from "../../../shared/qubesdb/types.js";

const CLIENTS = 299;
const RULES = 50;
const NOW = 1_800_000_000;
const run = promisify(execFile);

const dir = mkdtempSync(join(tmpdir(), `dom0-topology-${process.pid}-`));
const qubesDir = join(dir, "qubes");
const runDir = join(dir, "run");
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const names = [PROXY, ...Array.from({ length: CLIENTS }, (_, i) => clientName(i + 1))];
await buildTopologyStore(qubesDir, CLIENTS, RULES, NOW);
const daemons = await startDaemons(runDir, names);
t.teardown(() => daemons.stop());

const clients = new Map<string, QubesDbClient>();
for (const name of names) {
  clients.set(name, await connectQubesDb({ socket: join(runDir, `qubesdb.${name}.sock`), reconnect: false }));
}
t.teardown(() => Promise.all([...clients.values()].map((c) => c.close())));
const db = (name: string) => clients.get(name)!;
const ctx = { qubesDir, runDir, now: NOW };

async function contents(name: string): Promise<Map<string, string>> {
  const entries = await db(name).multiread("/");
  return new Map([...entries].map(([k, v]) => [k, v.toString("utf8")]));
}

/** Records every key written or removed in the named DBs while `action` runs. */
async function recordWrites(watched: string[], action: () => Promise<void>): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>(watched.map((name) => [name, []]));
  const watchers = await Promise.all(
    watched.map(async (name) => {
      const client = await connectQubesDb({ socket: join(runDir, `qubesdb.${name}.sock`), reconnect: false });
      await client.watch("/");
      const loop = (async () => {
        for await (const path of client.events()) seen.get(name)!.push(path);
      })().catch(() => undefined);
      return { client, loop };
    }),
  );
  await action();
  // A marker written after the action: once it arrives, every earlier event has too.
  await Promise.all(watched.map((name) => db(name).write("/test-marker", "x")));
  const deadline = Date.now() + 60_000;
  while ([...seen.values()].some((paths) => !paths.includes("/test-marker")) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(watchers.map((w) => w.client.close()));
  await Promise.all(names.filter((n) => watched.includes(n)).map((n) => db(n).rm("/test-marker")));
  return new Map([...seen].map(([name, paths]) => [name, paths.filter((p) => p !== "/test-marker")]));
}

t.test("the first publication writes every key of the 300 VMs, exactly as planned", async (t) => {
  const report = await publishAll(ctx, readCollection(await readStore(qubesDir)));
  // clients: 9 own keys each; ProxyVM: 3 own + 5 netvm + 3 connected-ips (299 addresses need two
  // values) + per client 2 mapped-ip + (policy + 50 rules + signal)
  t.same(report, {
    vms: 300,
    writes: CLIENTS * 9 + 3 + 5 + 3 + CLIENTS * (2 + 1 + RULES + 1),
    removes: 0,
    errors: [],
  });
  const collection = readCollection(await readStore(qubesDir));
  const firewall = new Map(names.slice(1).map((name, i) => [name, clientRules(i + 1, RULES)]));
  const plan = planKeys({ collection, firewall, now: NOW, running: new Set(names) });
  for (const name of names) t.same(await contents(name), plan.get(name), name);
  const proxy = await contents(PROXY);
  // client-298 has qid 300: 10.137.1.44 (Qubes' rule for ids >= 256)
  t.same(
    [
      proxy.get("/qubes-firewall/10.137.1.44/0000"),
      proxy.get("/qubes-firewall/10.137.1.44/0049"),
      proxy.get("/qubes-firewall/10.137.1.44"),
      proxy.get("/mapped-ip/10.137.1.44/visible-ip"),
      `${proxy.get("/connected-ips")} ${proxy.get("/connected-ips/1")}`.split(" ").length,
      proxy.get("/connected-ips/1")?.split(" ").at(-1),
    ],
    [
      "action=accept dst4=198.51.100.0/32 proto=tcp dstports=1298-1298",
      "action=drop",
      "",
      "10.137.1.44",
      CLIENTS,
      "10.137.1.45",
    ],
  );
  t.same(
    Object.fromEntries(
      [...(await contents("client-298"))].filter(
        ([k]) => k.startsWith("/qubes-ip") || k === "/qubes-gateway",
      ),
    ),
    { "/qubes-gateway": "10.137.0.2", "/qubes-ip": "10.137.1.44" },
  );
});

t.test("a second sync with nothing changed writes nothing", async (t) => {
  const writes = await recordWrites([PROXY, "client-1"], async () => {
    const report = await publishAll(ctx, readCollection(await readStore(qubesDir)));
    t.same(report, { vms: 300, writes: 0, removes: 0, errors: [] });
  });
  t.same(Object.fromEntries(writes), { [PROXY]: [], "client-1": [] });
});

t.test("qvm-features on one client writes exactly its /qubes-ip and the ProxyVM's mapping", async (t) => {
  const writes = await recordWrites([PROXY, "client-17", "client-18"], async () => {
    await run(
      process.execPath,
      ["dist/dom0/cli/qvm-features.js", "--qubes-dir", qubesDir, "client-17", "net/fake-ip", "10.152.152.11"],
      {
        env: { ...process.env, QUBESDB_RUN_DIR: runDir },
      },
    );
  });
  // client-17 has qid 19
  t.same(Object.fromEntries(writes), {
    [PROXY]: ["/mapped-ip/10.137.0.19/visible-ip"],
    "client-17": ["/qubes-ip"],
    "client-18": [],
  });
  t.equal(await db("client-17").readText("/qubes-ip"), "10.152.152.11");
  t.equal(await db(PROXY).readText("/mapped-ip/10.137.0.19/visible-ip"), "10.152.152.11");
});

t.test("a feature on the template reaches every client based on it, and nothing else", async (t) => {
  const before = readCollection(await readStore(qubesDir));
  const after = await withStore(qubesDir, (doc) => {
    setFeature(doc, TEMPLATE, "net.fake-netmask", "255.255.255.0");
    return readCollection(doc);
  });
  const writes = await recordWrites([PROXY, "client-1", "client-299"], async () => {
    const report = await publishChange(ctx, before, after, { touched: [TEMPLATE] });
    t.same(report, { vms: CLIENTS, writes: CLIENTS, removes: 0, errors: [] });
  });
  t.same(Object.fromEntries(writes), {
    [PROXY]: [],
    "client-1": ["/qubes-netmask"],
    "client-299": ["/qubes-netmask"],
  });
});

t.test(
  "a changed firewall is republished in order: old rules removed, new rules, the signal last",
  async (t) => {
    const writes = await recordWrites([PROXY], async () => {
      await run(
        process.execPath,
        [
          "dist/dom0/cli/qvm-firewall.js",
          "--qubes-dir",
          qubesDir,
          "client-5",
          "add",
          "--before",
          "0",
          "action=drop",
          "dst4=203.0.113.0/24",
        ],
        { env: { ...process.env, QUBESDB_RUN_DIR: runDir } },
      );
    });
    const events = writes.get(PROXY)!;
    const base = "/qubes-firewall/10.137.0.7";
    t.equal(events.length, 1 + 1 + 51 + 1, "one rm, the policy, 51 rules, the signal");
    t.equal(events[0], `${base}/`);
    t.same(
      events.slice(1, -1).sort(),
      [
        `${base}/policy`,
        ...Array.from({ length: 51 }, (_, i) => `${base}/${String(i).padStart(4, "0")}`),
      ].sort(),
    );
    t.equal(events.at(-1), base);
    t.equal(await db(PROXY).readText(`${base}/0000`), "action=drop dst4=203.0.113.0/24");
    t.equal(await db(PROXY).readText(`${base}/0050`), "action=drop");
  },
);

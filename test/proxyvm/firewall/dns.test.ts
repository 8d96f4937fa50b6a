/**
 * DNS names in rules, end to end: our DNS server (scripts/servers/dns-server)
 * in the server namespace with short TTLs, the component's real
 * `dns.promises.Resolver` run inside the router namespace, and real traffic.
 * When the answer changes, the rules follow within its TTL, without any
 * new publication by dom0.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import type { LookupFn } from "../../../proxyvm/firewall/resolve.js";
import { firewallErrorKey } from "../../../shared/keys.js";
import { inNetns, netnsSkipReason, spawnInNetns, waitFor } from "../../helpers/netns.js";
import { startTestDaemon } from "../../helpers/qubesdb.js";
import { publishRules, startComponent, waitHandled } from "./harness.js";
import {
  createTopology,
  FAR,
  FAR6,
  type Probe,
  probe,
  SERVER,
  SERVER2,
  SERVER6,
  VM1,
  VM6,
} from "./topology.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const RESOLVE_JS = join(ROOT, "dist/proxyvm/firewall/resolve.js");
const DNS_SERVER_JS = join(ROOT, "dist/scripts/servers/dns-server.js");

/** not 53: the probe server already answers UDP 53 on the server's addresses */
const DNS_PORT = 5353;

const tcp = (dst: string, port: number, src = VM1): Probe => ({ kind: "tcp", src, dst, port });

/** The component's own lookup (createDnsLookup), run inside `ns`: the test process stays out of our namespaces' traffic. */
function lookupInNetns(ns: string, servers: string[]): LookupFn {
  return async (host, family) => {
    const code = [
      `import { createDnsLookup } from ${JSON.stringify(RESOLVE_JS)};`,
      "try {",
      `  const records = await createDnsLookup(${JSON.stringify(servers)}, 1000)(${JSON.stringify(host)}, ${family});`,
      "  process.stdout.write(JSON.stringify({ records }));",
      "} catch (error) { process.stdout.write(JSON.stringify({ error: error.code ?? String(error) })); }",
    ].join("\n");
    const result = await inNetns(ns, process.execPath, ["--input-type=module", "-e", code]);
    const parsed = JSON.parse(String(result.stdout)) as {
      records?: Array<{ address: string; ttl: number }>;
      error?: string;
    };
    if (parsed.error !== undefined) throw Object.assign(new Error(parsed.error), { code: parsed.error });
    return parsed.records ?? [];
  };
}

t.test(
  "a dsthost rule follows its DNS answer when the TTL runs out",
  { skip: netnsSkipReason() },
  async (t) => {
    const topo = await createTopology(t);
    const dir = mkdtempSync(join(tmpdir(), `fwdns-${process.pid}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const zoneFile = join(dir, "zone.json");
    const setZone = (zone: Record<string, { A?: string[]; AAAA?: string[]; ttl?: number }>) =>
      writeFileSync(zoneFile, JSON.stringify(zone));
    setZone({ "far.example": { A: [FAR], ttl: 2 }, "six.example": { AAAA: [FAR6], ttl: 2 } });
    const server: ChildProcess = spawnInNetns(t, topo.server, process.execPath, [
      DNS_SERVER_JS,
      "--listen",
      SERVER,
      "--port",
      String(DNS_PORT),
      "--zone",
      zoneFile,
    ]);
    await new Promise<void>((r, reject) => {
      let stderr = "";
      server.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      server.stdout?.once("data", () => r());
      server.once("exit", (code) => reject(new Error(`dns-server exited with ${code}: ${stderr}`)));
    });

    const daemon = await startTestDaemon(t);
    const db = await daemon.client();
    await publishRules(db, VM1, ["action=accept dsthost=far.example proto=tcp"]);
    await publishRules(db, VM6, ["action=accept dsthost=six.example proto=tcp"]);
    const { component } = await startComponent(t, db, await daemon.client(), {
      netns: topo.router,
      lookup: lookupInNetns(topo.router, [`${SERVER}:${DNS_PORT}`]),
      resolverTimings: { minTtlMs: 500, backoffMs: 300, maxBackoffMs: 600 },
      // each lookup here starts a process inside the namespace: slow on a loaded machine
      dnsWaitMs: 5000,
    });

    await t.test("the resolved addresses are enforced and exported", async (t) => {
      t.same(
        await probe(topo.client, [tcp(FAR, 80), tcp(SERVER2, 80), tcp(FAR6, 80, VM6), tcp(SERVER6, 80, VM6)]),
        ["ok", "admin-prohibited", "ok", "admin-prohibited"],
      );
      t.equal(await db.readText(`/dns/${VM1}/far.example`), `${FAR}/32`);
      t.equal(await db.readText(`/dns/${VM6}/six.example`), `${FAR6}/128`);
      t.match(component.status(), { [VM1]: { state: "enforcing", dnsRefreshAt: Number } });
    });

    await t.test("a changed answer takes over after the TTL, with no new publication", async (t) => {
      setZone({ "far.example": { A: [SERVER2], ttl: 2 }, "six.example": { AAAA: [FAR6], ttl: 2 } });
      const value = await waitFor(
        async () => (await db.readText(`/dns/${VM1}/far.example`)) === `${SERVER2}/32`,
        8000,
      );
      t.ok(value, "re-resolved after the TTL");
      t.same(await probe(topo.client, [tcp(SERVER2, 80), tcp(FAR, 80)]), ["ok", "admin-prohibited"]);
    });

    await t.test(
      "a name that stops resolving makes its accept rule match nothing, and comes back",
      async (t) => {
        setZone({ "six.example": { AAAA: [FAR6], ttl: 2 } });
        await waitFor(async () => (await db.readText(`/dns/${VM1}/far.example`)) === undefined, 8000);
        t.equal(await db.readText(`/dns/${VM1}/far.example`), undefined);
        t.equal(await db.readText(firewallErrorKey(VM1)), "", "an accept rule does not block the VM");
        t.same(await probe(topo.client, [tcp(SERVER2, 80)]), ["admin-prohibited"]);
        setZone({ "far.example": { A: [SERVER2], ttl: 2 }, "six.example": { AAAA: [FAR6], ttl: 2 } });
        await waitFor(async () => (await db.readText(`/dns/${VM1}/far.example`)) === `${SERVER2}/32`, 8000);
        t.same(
          await probe(topo.client, [tcp(SERVER2, 80)]),
          ["ok"],
          "retried with back-off until it resolved",
        );
      },
    );

    await t.test("a drop rule whose name does not resolve blocks the VM until it does", async (t) => {
      const before = Number(await db.readText(`/qubes-firewall-handled/${VM1}`));
      await publishRules(db, VM1, ["action=drop dsthost=late.example", "action=accept"]);
      await waitHandled(db, VM1, before + 1);
      t.match(
        await db.readText(firewallErrorKey(VM1)),
        /^Cannot resolve "late\.example" of drop rule .*ENOTFOUND/,
      );
      t.same(await probe(topo.client, [tcp(FAR, 80)]), ["admin-prohibited"]);
      setZone({ "late.example": { A: [SERVER2], ttl: 2 } });
      await waitFor(async () => (await db.readText(firewallErrorKey(VM1))) === "", 8000);
      t.same(await probe(topo.client, [tcp(FAR, 80), tcp(SERVER2, 80)]), ["ok", "admin-prohibited"]);
    });
  },
);

import t from "tap";
import { applyVmKeys, readDom0Keys } from "../../../dom0/emitter/apply.js";
import { startTestDaemon } from "../../helpers/qubesdb.js";

const base = new Map([
  ["/name", "sys-firewall"],
  ["/qubes-netvm-gateway", "10.137.0.5"],
  ["/connected-ips", "10.137.0.7"],
  ["/mapped-ip/10.137.0.7/visible-ip", "10.152.152.11"],
  ["/qubes-firewall/10.137.0.7/policy", "drop"],
  ["/qubes-firewall/10.137.0.7/0000", "action=accept"],
  ["/qubes-firewall/10.137.0.7", ""],
]);

t.test("a first apply writes every key, a second writes nothing", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  t.same(await applyVmKeys(client, base), { writes: 7, removes: 0 });
  t.same(await applyVmKeys(client, base), { writes: 0, removes: 0 });
  t.same(await readDom0Keys(client), base);
});

t.test("changed values are written, unwanted dom0 keys removed, other keys never touched", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  await applyVmKeys(client, base);
  const foreign = [
    ["/qubes-firewall-handled/10.137.0.7", "3"],
    ["/qubes-firewall-error/10.137.0.7", ""],
    ["/dns/10.137.0.9/example.com", "192.0.2.1/32"],
    ["/qubes-service/foo", "1"],
  ];
  for (const [key, value] of foreign) await client.write(key!, value!);
  // stale dom0 keys: a client that left, an IPv6 address that is gone
  await client.write("/qubes-ip6", "fd09:24ef:4179::a89:5");
  await client.write("/mapped-ip/10.137.0.9/visible-ip", "10.137.0.9");
  await client.write("/qubes-firewall/10.137.0.9/policy", "drop");
  await client.write("/qubes-firewall/10.137.0.9", "");
  const desired = new Map(base);
  desired.set("/connected-ips", "10.137.0.7 10.137.0.8");
  t.same(await applyVmKeys(client, desired), { writes: 1, removes: 4 });
  t.same(await readDom0Keys(client), desired);
  for (const [key, value] of foreign) t.equal(await client.readText(key!), value, `${key} kept`);
});

t.test(
  "changed rules are republished in order: rm, rules, then the signal; unchanged ones are not",
  async (t) => {
    const db = await startTestDaemon(t);
    const client = await db.client();
    const twoClients = new Map([
      ...base,
      ["/qubes-firewall/10.137.0.8/policy", "drop"],
      ["/qubes-firewall/10.137.0.8/0000", "action=accept"],
      ["/qubes-firewall/10.137.0.8", ""],
    ]);
    await applyVmKeys(client, twoClients);
    const watcher = await db.client();
    await watcher.watch("/qubes-firewall/");
    const events: string[] = [];
    const loop = (async () => {
      for await (const path of watcher.events()) events.push(path);
    })();
    const desired = new Map(twoClients);
    desired.delete("/qubes-firewall/10.137.0.7/0000");
    desired.set("/qubes-firewall/10.137.0.7/0001", "action=drop proto=udp");
    t.same(await applyVmKeys(client, desired), { writes: 3, removes: 1 });
    await client.write("/qubes-firewall/end", "");
    while (!events.includes("/qubes-firewall/end")) await new Promise((r) => setTimeout(r, 5));
    await watcher.close();
    await loop.catch(() => undefined);
    t.same(events, [
      "/qubes-firewall/10.137.0.7/",
      "/qubes-firewall/10.137.0.7/policy",
      "/qubes-firewall/10.137.0.7/0001",
      "/qubes-firewall/10.137.0.7",
      "/qubes-firewall/end",
    ]);
    t.same(await client.readText("/qubes-firewall/10.137.0.7/0000"), undefined);
  },
);

t.test("a missing signal alone makes the rules be republished", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  await applyVmKeys(client, base);
  await client.rm("/qubes-firewall/10.137.0.7");
  t.same(await applyVmKeys(client, base), { writes: 3, removes: 1 });
});

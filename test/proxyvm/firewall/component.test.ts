/**
 * The firewall component against a real QubesDB daemon and a real kernel:
 * the commit signal, fail closed on each kind of bad input and on apply
 * errors, reports, removal, and a restart that keeps enforcing.
 */
import t from "tap";
import { createNftApplier } from "../../../proxyvm/firewall/apply.js";
import type { LookupFn } from "../../../proxyvm/firewall/resolve.js";
import { listNftJson } from "../../../proxyvm/system/nft.js";
import {
  firewallErrorKey,
  firewallHandledKey,
  firewallRulesPrefix,
  firewallSignalKey,
} from "../../../shared/keys.js";
import { netnsSkipReason, waitFor } from "../../helpers/netns.js";
import { startTestDaemon } from "../../helpers/qubesdb.js";
import { handledCount, publishRules, startComponent, waitHandled } from "./harness.js";
import { createTopology, FAR, type Probe, probe, SERVER, VM1, VM2, VM6 } from "./topology.js";

const tcp = (dst: string, port: number, src = VM1): Probe => ({ kind: "tcp", src, dst, port });
const OK = "ok";
const NO = "admin-prohibited";

interface BadCase {
  name: string;
  n?: string;
  rules: Array<string | Buffer>;
  extra?: Record<string, string | Buffer>;
  policy?: string | null;
  error: RegExp;
}

const badCases: BadCase[] = [
  { name: "a missing policy", rules: ["action=accept"], policy: null, error: /key "policy" is missing/ },
  {
    name: "an unknown option",
    rules: ["action=accept color=red"],
    error: /key "0000".*"color".*unknown option/,
  },
  { name: "a repeated option", rules: ["action=accept proto=tcp proto=udp"], error: /key "0000".*"proto"/ },
  {
    name: "a value with a second =",
    rules: ["action=accept proto=tcp=udp"],
    error: /key "0000".*second "="/,
  },
  {
    name: "ports out of range",
    rules: ["action=accept proto=tcp dstports=1-70000"],
    error: /key "0000".*70000 is out of range 0\.\.65535/,
  },
  {
    name: "a key name that is not four digits",
    rules: ["action=accept"],
    extra: { "12345": "action=accept" },
    error: /key "\/qubes-firewall\/10\.137\.0\.12\/12345" is neither four digits nor "policy"/,
  },
  { name: "an oversized value", rules: [`action=accept dsthost=${"a".repeat(3000)}`], error: /key "0000"/ },
  {
    name: "a binary value",
    rules: [Buffer.from([0x61, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x3d, 0x01, 0xff])],
    error: /key "0000".*\\x01\\xff/,
  },
  {
    name: "a dst4 rule in the IPv6 set",
    n: VM6,
    rules: ["action=accept dst4=192.0.2.0/24"],
    error: /key "0000".*a dst4 rule in the IPv6 set/,
  },
];

t.test(
  "the firewall component acts on the commit signal and fails closed",
  { skip: netnsSkipReason() },
  async (t) => {
    const topo = await createTopology(t);
    const daemon = await startTestDaemon(t);
    const db = await daemon.client();
    let failNextApply = false;
    const real = createNftApplier({ netns: topo.router });
    t.teardown(() => real.close?.());
    const applier = {
      apply: async (script: string) => {
        if (failNextApply) {
          failNextApply = false;
          throw new Error("injected nft failure");
        }
        await real.apply(script);
      },
    };
    const names = new Map<string, string[]>();
    /** host → ms a lookup of it takes */
    const slow = new Map<string, number>();
    const lookup: LookupFn = async (host) => {
      await new Promise((r) => setTimeout(r, slow.get(host) ?? 0));
      const found = names.get(host);
      if (found === undefined) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
      return found.map((address) => ({ address, ttl: 1 }));
    };
    await publishRules(db, VM1, ["action=accept proto=tcp dstports=80-80"]);
    await publishRules(db, VM2, ["action=accept"]);
    const driven = await startComponent(t, db, await daemon.client(), {
      applier,
      lookup,
      resolverTimings: { backoffMs: 100, maxBackoffMs: 200 },
    });
    const { component } = driven;

    await t.test("start applies every published rule set in one step", async (t) => {
      t.same(await probe(topo.client, [tcp(SERVER, 80), tcp(SERVER, 443), tcp(SERVER, 443, VM2)]), [
        OK,
        NO,
        OK,
      ]);
      t.equal(await db.readText(firewallErrorKey(VM1)), "");
      t.equal(await db.readText(firewallHandledKey(VM1)), "1");
      t.match(component.status(), { [VM1]: { state: "enforcing", rules: 1 } });
    });

    await t.test("writes below the signal are never acted on alone", async (t) => {
      await db.write(`${firewallRulesPrefix(VM1)}0000`, "action=drop");
      await new Promise((r) => setTimeout(r, 300));
      t.equal(await handledCount(db, VM1), 1);
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [OK], "the old rules still apply");
      await db.write(firewallSignalKey(VM1), "");
      t.equal(await waitHandled(db, VM1, 2), 2);
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [NO], "the new rules apply after the signal");
    });

    for (const bad of badCases) {
      await t.test(`${bad.name} blocks the VM, names key and rule, leaves others alone`, async (t) => {
        const n = bad.n ?? VM1;
        const src = bad.n ?? VM1;
        await publishRules(db, n, ["action=accept"]);
        const before = await waitHandled(db, n, (await handledCount(db, n)) + 1);
        t.same(await probe(topo.client, [tcp(n.includes(":") ? "2001:db8:1::1" : SERVER, 80, src)]), [OK]);
        await publishRules(db, n, bad.rules, bad.extra, bad.policy === undefined ? "drop" : bad.policy);
        await waitHandled(db, n, before + 1);
        t.same(
          await probe(topo.client, [tcp(n.includes(":") ? "2001:db8:1::1" : SERVER, 80, src)]),
          [NO],
          "blocked",
        );
        t.same(await probe(topo.client, [tcp(FAR, 80, VM2)]), [OK], "another VM is untouched");
        t.match(await db.readText(firewallErrorKey(n)), bad.error);
        t.match(component.status(), { [n]: { state: "blocked", error: bad.error } });
        t.match(driven.logs.at(-1), /^ERROR Blocked VM: cannot apply its firewall rules vm=/);
      });
    }

    await t.test("valid rules after an error clear the error", async (t) => {
      const before = await handledCount(db, VM1);
      await publishRules(db, VM1, ["action=accept"]);
      await waitHandled(db, VM1, before + 1);
      t.equal(await db.readText(firewallErrorKey(VM1)), "");
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [OK]);
    });

    await t.test("an nft failure blocks the VM first, then reports and retries", async (t) => {
      const before = await handledCount(db, VM1);
      failNextApply = true;
      await publishRules(db, VM1, ["action=accept proto=tcp"]);
      await waitHandled(db, VM1, before + 1);
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [NO]);
      t.match(
        await db.readText(firewallErrorKey(VM1)),
        /^Cannot apply the firewall rules of "10\.137\.0\.12": injected nft failure$/,
      );
      await component.sync(VM1);
      t.equal(await db.readText(firewallErrorKey(VM1)), "", "a retry succeeds");
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [OK]);
    });

    await t.test("a drop rule whose name does not resolve blocks the VM until it resolves", async (t) => {
      const before = await handledCount(db, VM1);
      await publishRules(db, VM1, ["action=drop dsthost=late.example", "action=accept"]);
      await waitHandled(db, VM1, before + 1);
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [NO]);
      t.match(
        await db.readText(firewallErrorKey(VM1)),
        /^Cannot resolve "late\.example" of drop rule "action=drop dsthost=late\.example": ENOTFOUND/,
      );
      names.set("late.example", [FAR]);
      await waitFor(async () => (await db.readText(firewallErrorKey(VM1))) === "", 5000);
      t.equal(await db.readText(firewallErrorKey(VM1)), "", "the back-off retry resolved it");
      t.same(await probe(topo.client, [tcp(SERVER, 80), tcp(FAR, 80)]), [OK, NO]);
      t.equal(await db.readText(`/dns/${VM1}/late.example`), `${FAR}/32`);
    });

    await t.test("a slow DNS lookup for one VM does not hold up another VM", async (t) => {
      names.set("slow.example", [FAR]);
      slow.set("slow.example", 2500);
      const before2 = await handledCount(db, VM2);
      await publishRules(db, VM1, ["action=accept dsthost=slow.example", "action=accept proto=udp"]);
      await publishRules(db, VM2, ["action=drop proto=tcp dstports=80-80", "action=accept"]);
      const started = Date.now();
      await waitHandled(db, VM2, before2 + 1, 2000);
      t.ok(Date.now() - started < 2000, "VM2 applied before VM1's lookup finished");
      t.same(
        await probe(topo.client, [tcp(SERVER, 80, VM2), tcp(FAR, 80)]),
        [NO, NO],
        "VM1's name is not resolved yet",
      );
      await waitFor(async () => (await db.readText(`/dns/${VM1}/slow.example`)) !== undefined, 6000);
      t.same(await probe(topo.client, [tcp(FAR, 80)]), [OK], "VM1 synced again once the answer came");
      slow.delete("slow.example");
      await publishRules(db, VM2, ["action=accept"]);
      await waitHandled(db, VM2, before2 + 2);
    });

    await t.test("a second instance (agent restart) adopts the tables and keeps enforcing", async (t) => {
      await publishRules(db, VM1, ["action=accept proto=tcp dstports=80-80"]);
      await waitFor(async () => (await probe(topo.client, [tcp(SERVER, 443)]))[0] === NO, 5000);
      component.close();
      t.same(
        await probe(topo.client, [tcp(SERVER, 80), tcp(SERVER, 443)]),
        [OK, NO],
        "no agent: rules persist",
      );
      const second = await startComponent(t, db, await daemon.client(), { netns: topo.router, lookup });
      t.same(await probe(topo.client, [tcp(SERVER, 80), tcp(SERVER, 443)]), [OK, NO]);
      t.match(second.component.status(), { [VM1]: { state: "enforcing" } });
    });

    await t.test("removing the signal removes chains, map entries and published keys", async (t) => {
      await db.rm(firewallRulesPrefix(VM1));
      await db.rm(firewallSignalKey(VM1));
      await waitFor(async () => (await db.readText(firewallHandledKey(VM1))) === undefined, 5000);
      t.equal(await db.readText(firewallErrorKey(VM1)), undefined);
      t.same(await db.list(`/dns/${VM1}/`), []);
      const chains = (await listNftJson(["list", "chains"], { netns: topo.router })).flatMap((e) => {
        const chain = (e as { chain?: { name: string } }).chain;
        return chain === undefined ? [] : [chain.name];
      });
      t.notOk(
        chains.some((c) => c.includes(VM1)),
        "no chain of the removed VM",
      );
      t.ok(chains.includes(`vm-${VM2}`), "the other VM's chain stays");
      const map = await listNftJson(["list", "map", "ip", "qubes-fakeip-fw", "vms"], { netns: topo.router });
      t.notMatch(JSON.stringify(map), VM1, "no map entry");
      t.same(await probe(topo.client, [tcp(SERVER, 80)]), [NO], "a client without rules is blocked");
    });
  },
);

import t from "tap";
import { type AgentComponent, PermanentSyncError } from "../../proxyvm/component.js";
import { Reconciler } from "../../proxyvm/reconciler.js";
import { silentLogger } from "../../shared/log.js";

/** A component whose `sync` records calls and fails as scripted (a mock of logic, not of the data plane). */
function component(script: Record<string, (Error | undefined)[]> = {}, keys: string[] = []) {
  const calls: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const c: AgentComponent & { calls: string[]; hold(p: Promise<void>): void } = {
    name: "test",
    watches: ["/mapped-ip/"],
    calls,
    hold(p) {
      gate = p;
    },
    keysForEvent: (path) => (path.startsWith("/mapped-ip/") ? [path.split("/")[2] ?? ""] : []),
    listKeys: async () => keys,
    async sync(key) {
      calls.push(key);
      await gate;
      const error = script[key]?.shift();
      if (error !== undefined) throw error;
    },
    status: () => ({}),
  };
  return c;
}

t.test("duplicate marks of a queued key collapse into one sync", async (t) => {
  const c = component();
  let release = () => {};
  c.hold(new Promise<void>((r) => (release = r)));
  const r = new Reconciler({ components: [c], log: silentLogger });
  r.start();
  r.mark(c, "first");
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 5; i++) r.mark(c, "a");
  r.mark(c, "b");
  release();
  await r.whenIdle();
  t.same(c.calls, ["first", "a", "b"]);
  await r.stop();
});

t.test("a transient failure is retried with back-off until it converges", async (t) => {
  const c = component({ a: [new Error("busy"), new Error("busy")] });
  const r = new Reconciler({ components: [c], log: silentLogger, initialBackoffMs: 5 });
  r.start();
  const first = await r.markAndWait(c, "a");
  t.same(first, { ok: false, error: "busy" }, "the waiter gets the first result");
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(c.calls, ["a", "a", "a"], "two retries, then success");
  await r.stop();
});

t.test("a permanent failure is reported once and never retried", async (t) => {
  const c = component({ a: [new PermanentSyncError("bad visible IP")] });
  const r = new Reconciler({ components: [c], log: silentLogger, initialBackoffMs: 5 });
  r.start();
  t.same(await r.markAndWait(c, "a"), { ok: false, error: "bad visible IP" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(c.calls, ["a"]);
  await r.stop();
});

t.test(
  "QubesDB events are routed by keysForEvent and the reconnect marker re-lists everything",
  async (t) => {
    const c = component({}, ["x", "y"]);
    const r = new Reconciler({ components: [c], log: silentLogger });
    r.start();
    await r.handleQubesDbEvent("/mapped-ip/10.137.0.5/visible-ip");
    await r.handleQubesDbEvent("/qubes-firewall/10.137.0.5");
    await r.whenIdle();
    t.same(c.calls, ["10.137.0.5"]);
    await r.handleQubesDbEvent("");
    await r.whenIdle();
    t.same(c.calls, ["10.137.0.5", "x", "y"]);
    await r.stop();
  },
);

t.test("a component with syncAll gets one full reload for all its keys", async (t) => {
  const c = component({}, ["x", "y"]);
  const reloads: string[][] = [];
  c.syncAll = async (keys) => {
    reloads.push([...keys]);
  };
  const r = new Reconciler({ components: [c], log: silentLogger });
  r.start();
  await r.markAll();
  await r.whenIdle();
  t.same(reloads, [["x", "y"]]);
  t.same(c.calls, [], "no per-key syncs");
  await r.stop();
});

t.test(
  "a waiter marked while its key is syncing gets the next sync's result, not the running one's",
  async (t) => {
    // The running sync read its facts before the mark (a vif's `offline` arriving
    // during a resync of its `online`): answering the waiter with its result
    // would report work as done that nobody did yet.
    const c = component({ a: [new Error("stale"), undefined] });
    let release = () => {};
    c.hold(new Promise<void>((r) => (release = r)));
    const r = new Reconciler({ components: [c], log: silentLogger, initialBackoffMs: 60_000 });
    r.start();
    const first = r.markAndWait(c, "a");
    await new Promise((resolve) => setImmediate(resolve));
    t.same(c.calls, ["a"], "the first sync is running");
    const second = r.markAndWait(c, "a");
    release();
    t.same(await first, { ok: false, error: "stale" }, "the first waiter gets the running sync's result");
    t.same(await second, { ok: true }, "the second waiter waited for a sync that began after its mark");
    t.same(c.calls, ["a", "a"]);
    await r.stop();
  },
);

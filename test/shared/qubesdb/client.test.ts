import t from "tap";
import { connectQubesDb } from "../../../shared/qubesdb/client.js";
import {
  QubesDbDisconnectedError,
  QubesDbInvalidInputError,
  QubesDbNotFoundError,
  QubesDbRefusedError,
} from "../../../shared/qubesdb/errors.js";
import { startTestDaemon } from "../../helpers/qubesdb.js";

async function nextEvents(iterator: AsyncIterator<string>, count: number): Promise<string[]> {
  const events: string[] = [];
  for (let i = 0; i < count; i++) {
    const next = await iterator.next();
    if (next.done) break;
    events.push(next.value);
  }
  return events;
}

t.test("read, write, rm, list and multiread behave like the reference library", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  await client.write("/b", "2");
  await client.write("/a/x", Buffer.from([1, 0xff, 0x20]));
  await client.write("/a-y", "");
  t.same(await client.read("/a/x"), Buffer.from([1, 0xff, 0x20]));
  t.equal(await client.readText("/b"), "2");
  t.equal(await client.readText("/missing"), undefined);
  await t.rejects(client.read("/missing"), new QubesDbNotFoundError("/missing"));
  t.same(await client.list("/a"), ["/a-y", "/a/x"]);
  t.same(
    [...(await client.multiread(""))].map(([k, v]) => [k, v.toString("latin1")]),
    [
      ["/a-y", ""],
      ["/a/x", "\x01\xff "],
      ["/b", "2"],
    ],
  );
  t.same([...(await client.multiread("/a/")).keys()], ["/a/x"]);
  t.equal(await client.rm("/a/"), true);
  t.equal(await client.rm("/a/"), false);
  t.equal(await client.rm("/nothing"), false);
  t.same(await client.list(""), ["/a-y", "/b"]);
});

t.test("pipelined requests get their own replies in order", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  const writes = Array.from({ length: 200 }, (_, i) =>
    client.write(`/k/${String(i).padStart(3, "0")}`, `v${i}`),
  );
  await Promise.all(writes);
  const reads = await Promise.all(
    Array.from({ length: 200 }, (_, i) => client.readText(`/k/${String(i).padStart(3, "0")}`)),
  );
  t.same(
    reads,
    Array.from({ length: 200 }, (_, i) => `v${i}`),
  );
  const [list, missing, multi] = await Promise.all([
    client.list("/k/"),
    client.readText("/k/none"),
    client.multiread("/k/19"),
  ]);
  t.equal(list.length, 200);
  t.equal(missing, undefined);
  t.same(
    [...multi.keys()],
    ["/k/190", "/k/191", "/k/192", "/k/193", "/k/194", "/k/195", "/k/196", "/k/197", "/k/198", "/k/199"],
  );
});

t.test("events arriving between replies are queued in order and never lost", async (t) => {
  const db = await startTestDaemon(t);
  const watcher = await db.client();
  const writer = await db.client();
  await watcher.watch("/w/");
  await watcher.watch("/exact");
  const iterator = watcher.events()[Symbol.asyncIterator]();
  for (let i = 0; i < 50; i++) {
    await writer.write(`/w/${i}`, "x");
    // the watcher's own request interleaves with events on its socket
    await watcher.readText(`/w/${i}`);
  }
  await writer.write("/exact", "1");
  await writer.write("/exactly", "1");
  await writer.rm("/w/");
  const events = await nextEvents(iterator, 52);
  t.same(events, [...Array.from({ length: 50 }, (_, i) => `/w/${i}`), "/exact", "/w/"]);
  t.equal(await watcher.unwatch("/exact"), true);
  t.equal(await watcher.unwatch("/exact"), false);
});

t.test("own write: the reply resolves before the event is delivered", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  await client.watch("/self");
  const order: string[] = [];
  const iterator = client.events()[Symbol.asyncIterator]();
  const event = iterator.next().then(() => order.push("event"));
  await client.write("/self", "v").then(() => order.push("reply"));
  await event;
  t.same(order, ["reply", "event"]);
});

t.test(
  "after the daemon restarts the client reconnects, re-registers watches and yields an empty path once",
  async (t) => {
    const db = await startTestDaemon(t);
    const client = await db.client({ reconnect: true });
    await client.watch("/r/");
    await client.watch("/r/");
    const iterator = client.events()[Symbol.asyncIterator]();
    await db.restart();
    t.same(await nextEvents(iterator, 1), [""]);
    const other = await db.client();
    await other.write("/r/x", "1");
    t.same(await nextEvents(iterator, 2), ["/r/x", "/r/x"], "both registrations came back");
    t.equal(await client.readText("/r/x"), "1");
  },
);

t.test("requests fail with QubesDbDisconnectedError when the daemon dies and reconnect is off", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  await client.write("/a", "1");
  await db.stop();
  await t.rejects(client.read("/a"), QubesDbDisconnectedError);
  const ended = await client.events()[Symbol.asyncIterator]().next();
  t.equal(ended.done, true, "events() ends");
});

t.test("a closed client rejects pending and new requests", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  const pending = t.rejects(client.read("/x"), QubesDbDisconnectedError);
  await client.close();
  await pending;
  await t.rejects(client.write("/x", "1"), {
    name: "QubesDbDisconnectedError",
    message: "Cannot send request: the QubesDB connection is closed",
  });
});

t.test("connecting to a missing socket is a QubesDbDisconnectedError naming the socket", async (t) => {
  await t.rejects(connectQubesDb({ socket: "/nonexistent/qubesdb.sock" }), {
    name: "QubesDbDisconnectedError",
    message: /^Cannot connect to QubesDB "\/nonexistent\/qubesdb.sock": /,
  });
});

t.test(
  "the read-only socket is used when the RW one cannot be connected; writes there are refused",
  async (t) => {
    const db = await startTestDaemon(t);
    const rw = await db.client();
    await rw.write("/ro", "yes");
    const ro = await connectQubesDb({ socket: `${db.dir}/missing.sock` }).catch(() => undefined);
    t.equal(ro, undefined, "no fallback for a socket without a twin");
    const { rmSync, symlinkSync } = await import("node:fs");
    symlinkSync(db.roSocket, `${db.dir}/only.ro.sock`);
    const fallback = await connectQubesDb({ socket: `${db.dir}/only.sock`, reconnect: false });
    t.teardown(() => fallback.close());
    t.equal(fallback.connectedPath, `${db.dir}/only.ro.sock`);
    t.equal(await fallback.readText("/ro"), "yes");
    await t.rejects(
      fallback.write("/ro", "no"),
      new QubesDbRefusedError('Cannot write "/ro": the daemon refused (RESP_ERROR)'),
    );
    await t.rejects(fallback.rm("/ro"), QubesDbRefusedError);
    await fallback.watch("/ro");
    rmSync(`${db.dir}/only.ro.sock`);
  },
);

t.test("keys and values are validated before sending, naming the key", async (t) => {
  const db = await startTestDaemon(t);
  const client = await db.client();
  const cases: Array<[() => Promise<unknown>, string]> = [
    [() => client.write("abc", "1"), 'Cannot write "abc": does not start with "/"'],
    [() => client.write("/d/", "1"), 'Cannot write "/d/": ends with "/"'],
    [
      () => client.write(`/${"a".repeat(63)}`, "1"),
      `Cannot write "/${"a".repeat(63)}": longer than 63 characters`,
    ],
    [
      () => client.write("/a b", "1"),
      'Cannot write "/a b": contains " "; only a-z A-Z 0-9 - _ . : @ / are allowed',
    ],
    [
      () => client.write("/v", "x".repeat(3072)),
      'Cannot write "/v": value is 3072 bytes, at most 3071 are allowed',
    ],
    [() => client.write("/v", "a\0b"), 'Cannot write "/v": value contains a NUL byte'],
    [() => client.read("rel"), 'Cannot read "rel": does not start with "/"'],
    [() => client.list("/é"), 'Cannot list "/é": contains "é"; only a-z A-Z 0-9 - _ . : @ / are allowed'],
    [() => client.multiread("-x"), 'Cannot multiread "-x": starts with "-"'],
  ];
  for (const [call, message] of cases) {
    await t.rejects(call(), new QubesDbInvalidInputError(message), message);
  }
  await client.write(`/${"a".repeat(62)}`, "x".repeat(3071));
  t.equal((await client.read(`/${"a".repeat(62)}`)).length, 3071, "the limits themselves are fine");
});

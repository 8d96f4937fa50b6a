/**
 * The daemon under awkward clients (spec §4 and §6.4, where the reference
 * blocks): split and coalesced messages, clients that stall mid-message or
 * never read, and many connections at once.
 */
import t from "tap";
import { RawConnection, rawFrame, startTestDaemon } from "../../helpers/qubesdb.js";

const READ = 0;
const WRITE = 1;
const LIST = 3;
const WATCH = 5;
const OK = 7;
const NOENT = 8;
const R_READ = 10;
const R_LIST = 12;
const R_WATCH = 13;

const tick = () => new Promise((r) => setTimeout(r, 1));

t.test("a message that arrives one byte at a time is handled like a whole one", async (t) => {
  const db = await startTestDaemon(t);
  const c = await RawConnection.connect(db.socket, t);
  const bytes = Buffer.concat([rawFrame(WRITE, "/split", "value"), rawFrame(READ, "/split")]);
  for (const byte of bytes) {
    await c.write(Buffer.from([byte]));
    await tick();
  }
  t.same(await c.readMany(2), [
    [OK, "/split", ""],
    [R_READ, "/split", "value"],
  ]);
});

t.test("coalesced messages in one write are all answered, in order", async (t) => {
  const db = await startTestDaemon(t);
  const c = await RawConnection.connect(db.socket, t);
  const frames: Buffer[] = [];
  for (let i = 0; i < 100; i++) frames.push(rawFrame(WRITE, `/c/${i}`, `${i}`), rawFrame(READ, `/c/${i}`));
  frames.push(rawFrame(READ, "/c/none"), rawFrame(LIST, "/c/99"));
  await c.write(Buffer.concat(frames));
  const replies = await c.readMany(200 + 1 + 2);
  const expected: Array<[number, string, string]> = [];
  for (let i = 0; i < 100; i++) expected.push([OK, `/c/${i}`, ""], [R_READ, `/c/${i}`, `${i}`]);
  expected.push([NOENT, "/c/none", ""], [R_LIST, "/c/99", ""], [R_LIST, "", ""]);
  t.same(replies, expected);
});

t.test(
  "a client that stalls in the middle of a header or a payload does not block other clients",
  async (t) => {
    const db = await startTestDaemon(t);
    const stalledHeader = await RawConnection.connect(db.socket, t);
    const stalledPayload = await RawConnection.connect(db.socket, t);
    await stalledHeader.write(rawFrame(WRITE, "/stall", "abc").subarray(0, 40));
    await stalledPayload.write(rawFrame(WRITE, "/stall2", "x".repeat(1000)).subarray(0, 72 + 10));
    const other = await RawConnection.connect(db.socket, t);
    await other.send(WRITE, "/free", "1");
    t.same(await other.readMany(1), [[OK, "/free", ""]]);
    await stalledHeader.write(rawFrame(WRITE, "/stall", "abc").subarray(40));
    t.same(await stalledHeader.readMany(1), [[OK, "/stall", ""]], "the stalled client finishes later");
    await stalledPayload.write(rawFrame(WRITE, "/stall2", "x".repeat(1000)).subarray(82));
    t.same(await stalledPayload.readMany(1), [[OK, "/stall2", ""]]);
  },
);

t.test(
  "a watcher that never reads is dropped when its queue passes the limit; others are unaffected",
  async (t) => {
    const db = await startTestDaemon(t);
    const deaf = await RawConnection.connect(db.socket, t);
    await deaf.send(WATCH, "/");
    t.same(await deaf.readMany(1), [[OK, "/", ""]]);
    deaf.socket.pause();
    const listener = await RawConnection.connect(db.socket, t);
    await listener.send(WATCH, "/flood/");
    t.same(await listener.readMany(1), [[OK, "/flood/", ""]]);
    const writer = await RawConnection.connect(db.socket, t);
    // 4 MiB of 72-byte events is ~58,000; send more than that, pipelined, in batches.
    const total = 80_000;
    const batch = 1000;
    let listened = 0;
    for (let sent = 0; sent < total; sent += batch) {
      const frames: Buffer[] = [];
      for (let i = 0; i < batch; i++) frames.push(rawFrame(WRITE, `/flood/${(sent + i) % 100}`, "x"));
      await writer.write(Buffer.concat(frames));
      await writer.readMany(batch);
      for (let i = 0; i < batch; i++) {
        if ((await listener.read()).type !== R_WATCH) t.fail("listener got something else");
        listened++;
      }
    }
    t.equal(listened, total, "the reading watcher got every event");
    deaf.socket.resume();
    let received = 0;
    while (!deaf.closed || deaf.buffered >= 72) {
      try {
        await deaf.read(2000);
        received++;
      } catch {
        break;
      }
    }
    t.ok(deaf.closed, "the deaf watcher was disconnected");
    t.ok(received < total, `it got only part of the events (${received} of ${total})`);
    await writer.send(READ, "/flood/1");
    t.same(await writer.readMany(1), [[R_READ, "/flood/1", "x"]], "the daemon is fine");
  },
);

t.test("500 simultaneous connections are all served", async (t) => {
  const db = await startTestDaemon(t);
  const connections = await Promise.all(
    Array.from({ length: 500 }, () => RawConnection.connect(db.socket, t)),
  );
  await Promise.all(
    connections.map(async (c, i) => {
      await c.write(Buffer.concat([rawFrame(WRITE, `/n/${i}`, `${i}`), rawFrame(READ, `/n/${i}`)]));
    }),
  );
  const replies = await Promise.all(connections.map((c) => c.readMany(2)));
  const wrong = replies.filter((r, i) => r[0]?.[0] !== OK || r[1]?.[2] !== `${i}`);
  t.equal(wrong.length, 0, "every connection got its own answers");
  for (const c of connections) c.destroy();
  const check = await RawConnection.connect(db.socket, t);
  await check.send(LIST, "/n/");
  t.equal((await check.readUntilEnd()).length, 501);
});

t.test(
  "a client that pipelines big MULTIREADs without reading is paused, not dropped, and gets every reply",
  async (t) => {
    const db = await startTestDaemon(t);
    const writer = await RawConnection.connect(db.socket, t);
    const value = "v".repeat(3000);
    const writes: Buffer[] = [];
    for (let i = 0; i < 100; i++) writes.push(rawFrame(WRITE, `/big/${String(i).padStart(3, "0")}`, value));
    await writer.write(Buffer.concat(writes));
    await writer.readMany(100);
    const greedy = await RawConnection.connect(db.socket, t);
    greedy.socket.pause();
    const requests = 100; // ~30 MB of replies in total
    await greedy.write(Buffer.concat(Array.from({ length: requests }, () => rawFrame(2, "/big/"))));
    await new Promise((r) => setTimeout(r, 300));
    await writer.send(READ, "/big/000");
    t.same((await writer.readMany(1))[0]?.slice(0, 2), [R_READ, "/big/000"], "others are served meanwhile");
    greedy.socket.resume();
    let complete = 0;
    for (let n = 0; n < requests; n++) {
      const reply = await greedy.readUntilEnd();
      if (
        reply.length === 101 &&
        reply.slice(0, 100).every(([type, , payload]) => type === 11 && payload === value)
      ) {
        complete++;
      }
    }
    t.equal(complete, requests, "every MULTIREAD reply arrived complete");
    t.notOk(greedy.closed);
  },
);

/**
 * Exact-byte tests of the daemon against spec §4–§8, over raw sockets.
 * Replies are compared as [type, path up to NUL, payload] (spec §8).
 */
import t from "tap";
import {
  RawConnection,
  rawFrame,
  startTestDaemon,
  type Teardown,
  type TestDaemon,
} from "../../helpers/qubesdb.js";

const READ = 0;
const WRITE = 1;
const MULTIREAD = 2;
const LIST = 3;
const RM = 4;
const WATCH = 5;
const UNWATCH = 6;
const OK = 7;
const NOENT = 8;
const ERROR = 9;
const R_READ = 10;
const R_MULTI = 11;
const R_LIST = 12;
const R_WATCH = 13;

async function open(t: Teardown, db: TestDaemon, readOnly = false): Promise<RawConnection> {
  return RawConnection.connect(readOnly ? db.roSocket : db.socket, t);
}

/** Sends one request and returns the single reply as a triple. */
async function ask(c: RawConnection, type: number, path: string, payload = "", dataLen?: number) {
  await c.send(type, path, payload, dataLen);
  const reply = await c.read();
  return [reply.type, reply.path, reply.payload];
}

/** Proves the connection still works: a READ of a missing key gets NOENT. */
async function stillOpen(c: RawConnection): Promise<boolean> {
  return (await ask(c, READ, "/still-open"))[0] === NOENT;
}

async function seed(c: RawConnection, entries: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(entries)) {
    const reply = await ask(c, WRITE, key, value);
    if (reply[0] !== OK) throw new Error(`seed ${key} got ${reply[0]}`);
  }
}

t.test(
  "the header check refuses bad types, paths and lengths with ERROR and keeps the connection",
  async (t) => {
    const db = await startTestDaemon(t);
    const c = await open(t, db);
    const cases: Array<[string, number, string, string, number?]> = [
      ["type 7 (RESP_OK) from a client", 7, "/a", ""],
      ["type 13 (RESP_WATCH) from a client", 13, "/a", ""],
      ["type 14", 14, "/a", ""],
      ["type 255", 255, "/a", ""],
      ["type 20 with a payload that must be discarded", 20, "/a", "zzzzz"],
      ["a space", READ, "/a b", ""],
      ["a tilde", READ, "/a~", ""],
      ["a plus", READ, "/a+", ""],
      ["a percent", READ, "/a%", ""],
      ["a comma", READ, "/a,", ""],
      ["a control byte", READ, "/a\x01", ""],
      ["a byte 0x80", WRITE, "/a\x80", "v"],
      ["a leading dash", WRITE, "-a", "v"],
      ["data_len 3072 on WRITE, payload discarded", WRITE, "/big", "x".repeat(3072)],
      ["data_len 100000 on READ, payload discarded", READ, "/huge", "y".repeat(100000)],
    ];
    for (const [name, type, path, payload] of cases) {
      t.same(await ask(c, type, path, payload), [ERROR, path, ""], name);
    }
    t.ok(await stillOpen(c), "the connection stays open");
    t.same(await ask(c, READ, "/big"), [NOENT, "/big", ""], "the refused write stored nothing");
  },
);

t.test(
  "accepted path characters include @ and need neither a leading nor a trailing slash rule at check time",
  async (t) => {
    const db = await startTestDaemon(t);
    const c = await open(t, db);
    t.same(await ask(c, WRITE, "/a@b:c.d_e-F9", "v"), [OK, "/a@b:c.d_e-F9", ""]);
    t.same(await ask(c, READ, "/a@b:c.d_e-F9"), [R_READ, "/a@b:c.d_e-F9", "v"]);
    t.same(await ask(c, READ, "a-b"), [NOENT, "a-b", ""], "no leading / is NOENT, not ERROR");
  },
);

t.test("limits: 63-character keys, 3071-byte values, and a 64-byte path is cut to 63", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  const key63 = `/${"k".repeat(62)}`;
  t.same(await ask(c, WRITE, key63, "x".repeat(3071)), [OK, key63, ""]);
  const read = await ask(c, READ, key63);
  t.same([read[0], read[1], (read[2] as string).length], [R_READ, key63, 3071]);
  const path64 = Buffer.from(`/${"z".repeat(63)}`, "latin1");
  await c.write(rawFrame(WRITE, path64, "cut"));
  const reply = await c.read();
  t.same([reply.type, reply.path], [OK, `/${"z".repeat(62)}`], "byte 63 forced to NUL");
  t.same(await ask(c, READ, `/${"z".repeat(62)}`), [R_READ, `/${"z".repeat(62)}`, "cut"]);
  t.same(await ask(c, WRITE, "/empty", ""), [OK, "/empty", ""]);
  t.same(await ask(c, READ, "/empty"), [R_READ, "/empty", ""], "empty values are allowed");
  t.same(await ask(c, WRITE, "/bin", "\x01\xff\x7f"), [OK, "/bin", ""]);
  t.same(await ask(c, READ, "/bin"), [R_READ, "/bin", "\x01\xff\x7f"], "binary safe except NUL");
});

t.test(
  "READ: exact key, NOENT for missing, trailing-slash, empty and relative paths; a payload gets ERROR",
  async (t) => {
    const db = await startTestDaemon(t);
    const c = await open(t, db);
    await seed(c, { "/r": "1", "/r/x": "2" });
    t.same(await ask(c, READ, "/r"), [R_READ, "/r", "1"]);
    t.same(await ask(c, READ, "/r/x"), [R_READ, "/r/x", "2"]);
    for (const path of ["/missing", "/r/", "", "r"])
      t.same(await ask(c, READ, path), [NOENT, path, ""], path);
    t.same(
      await ask(c, READ, "/r", "payload"),
      [ERROR, "/r", ""],
      "READ with payload: ERROR (reference: disconnect)",
    );
    t.ok(await stillOpen(c));
  },
);

t.test("WRITE: replaces, creates no parents; NUL value is ERROR and keeps the connection", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  t.same(await ask(c, WRITE, "/w/a/b", "old"), [OK, "/w/a/b", ""]);
  t.same(await ask(c, WRITE, "/w/a/b", "new"), [OK, "/w/a/b", ""]);
  t.same(await ask(c, READ, "/w/a/b"), [R_READ, "/w/a/b", "new"]);
  await c.send(LIST, "/");
  t.same(
    await c.readUntilEnd(),
    [
      [R_LIST, "/w/a/b", ""],
      [R_LIST, "", ""],
    ],
    "no implicit /w or /w/a",
  );
  t.same(await ask(c, WRITE, "/w/a/b", "a\0b"), [ERROR, "/w/a/b", ""]);
  t.same(await ask(c, READ, "/w/a/b"), [R_READ, "/w/a/b", "new"], "value unchanged");
  t.ok(await stillOpen(c));
});

t.test("WRITE to a key that cannot be stored: ERROR, then the daemon closes the connection", async (t) => {
  const db = await startTestDaemon(t);
  for (const path of ["", "abc", "/d/", "/"]) {
    const c = await open(t, db);
    await c.write(Buffer.concat([rawFrame(WRITE, path, "v"), rawFrame(READ, "/after")]));
    const reply = await c.read();
    t.same([reply.type, reply.path], [ERROR, path], `${JSON.stringify(path)}: ERROR`);
    t.ok(await c.waitClosed(), `${JSON.stringify(path)}: closed, the queued READ is never answered`);
    t.equal(c.buffered, 0);
  }
});

t.test("MULTIREAD: string prefix, ascending; empty prefix is the whole database descending", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  await seed(c, { "/pq": "4", "/p/a": "3", "/p-x": "2", "/p": "1", "/o": "0", "/p.": "5" });
  await c.send(MULTIREAD, "/p");
  t.same(await c.readUntilEnd(), [
    [R_MULTI, "/p", "1"],
    [R_MULTI, "/p-x", "2"],
    [R_MULTI, "/p.", "5"],
    [R_MULTI, "/p/a", "3"],
    [R_MULTI, "/pq", "4"],
    [R_MULTI, "", ""],
  ]);
  await c.send(MULTIREAD, "");
  t.same(await c.readUntilEnd(), [
    [R_MULTI, "/pq", "4"],
    [R_MULTI, "/p/a", "3"],
    [R_MULTI, "/p.", "5"],
    [R_MULTI, "/p-x", "2"],
    [R_MULTI, "/p", "1"],
    [R_MULTI, "/o", "0"],
    [R_MULTI, "", ""],
  ]);
  await c.send(MULTIREAD, "/");
  t.same(
    (await c.readUntilEnd()).map((e) => e[1]),
    ["/o", "/p", "/p-x", "/p.", "/p/a", "/pq", ""],
    "/ ascending",
  );
  for (const prefix of ["/none", "p"]) {
    await c.send(MULTIREAD, prefix);
    t.same(await c.readUntilEnd(), [[R_MULTI, "", ""]], `${prefix}: only the end marker`);
  }
  t.same(await ask(c, MULTIREAD, "/p", "x"), [ERROR, "/p", ""], "a payload gets ERROR");
  t.ok(await stillOpen(c));
});

t.test("LIST: keys without values, always ascending, also for the empty prefix", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  await seed(c, { "/b": "2", "/a/x": "1", "/a-": "3" });
  for (const prefix of ["", "/"]) {
    await c.send(LIST, prefix);
    t.same(await c.readUntilEnd(), [
      [R_LIST, "/a-", ""],
      [R_LIST, "/a/x", ""],
      [R_LIST, "/b", ""],
      [R_LIST, "", ""],
    ]);
  }
  await c.send(LIST, "/a/");
  t.same(await c.readUntilEnd(), [
    [R_LIST, "/a/x", ""],
    [R_LIST, "", ""],
  ]);
  t.same(await ask(c, LIST, "/", "x"), [ERROR, "/", ""]);
  t.ok(await stillOpen(c));
});

t.test("RM: one key without slash, a subtree with slash, NOENT when nothing went", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  const all = { "/d": "1", "/d/x": "2", "/d/y/z": "3", "/dz": "4", "/d-": "5" };
  await seed(c, all);
  t.same(await ask(c, RM, "/d", "payload"), [ERROR, "/d", ""], "payload: ERROR");
  t.same(await ask(c, RM, "/d"), [OK, "/d", ""]);
  t.same(await ask(c, READ, "/d/x"), [R_READ, "/d/x", "2"], "keys below are kept");
  t.same(await ask(c, RM, "/d/"), [OK, "/d/", ""]);
  await c.send(LIST, "/");
  t.same(
    (await c.readUntilEnd()).map((e) => e[1]),
    ["/d-", "/dz", ""],
    "/d/ removed /d/x and /d/y/z only",
  );
  for (const path of ["/d", "/d/", "/nothing/", ""])
    t.same(await ask(c, RM, path), [NOENT, path, ""], `NOENT ${path}`);
  t.same(await ask(c, RM, "/"), [OK, "/", ""], "/ removes everything");
  await c.send(LIST, "");
  t.same(await c.readUntilEnd(), [[R_LIST, "", ""]]);
});

t.test("the read-only socket refuses WRITE and RM (payload discarded) and allows the rest", async (t) => {
  const db = await startTestDaemon(t);
  const rw = await open(t, db);
  await seed(rw, { "/ro": "v" });
  const ro = await open(t, db, true);
  t.same(await ask(ro, WRITE, "/ro", "new"), [ERROR, "/ro", ""]);
  t.same(await ask(ro, WRITE, "/", "x"), [ERROR, "/", ""], "RO check before the storage rule: no close");
  t.same(await ask(ro, RM, "/ro"), [ERROR, "/ro", ""]);
  t.same(await ask(ro, READ, "/ro"), [R_READ, "/ro", "v"]);
  await ro.send(LIST, "/");
  t.same(await ro.readUntilEnd(), [
    [R_LIST, "/ro", ""],
    [R_LIST, "", ""],
  ]);
  await ro.send(MULTIREAD, "/");
  t.same(await ro.readUntilEnd(), [
    [R_MULTI, "/ro", "v"],
    [R_MULTI, "", ""],
  ]);
  t.same(await ask(ro, WATCH, "/ro"), [OK, "/ro", ""]);
  t.same(await ask(rw, WRITE, "/ro", "v2"), [OK, "/ro", ""]);
  t.same((await ro.read()).type, R_WATCH, "watches work on the RO socket");
  t.same(await ask(ro, UNWATCH, "/ro"), [OK, "/ro", ""]);
});

t.test(
  "watch matching: prefix for strings ending in /, exact otherwise; one event per registration",
  async (t) => {
    const db = await startTestDaemon(t);
    const w = await open(t, db);
    const c = await open(t, db);
    for (const path of ["/a/", "/a", "/a/x", "/a/x"]) t.same(await ask(w, WATCH, path), [OK, path, ""]);
    const cases: Array<[string, number]> = [
      ["/a/x", 3], // /a/ and twice /a/x
      ["/a/x/y", 1], // /a/
      ["/a", 1], // /a
      ["/ab", 0],
    ];
    for (const [key, count] of cases) {
      t.same(await ask(c, WRITE, key, "v"), [OK, key, ""]);
      t.same(await w.readMany(count), Array(count).fill([R_WATCH, key, ""]), `${key}: ${count} events`);
      t.ok(await w.silentFor(50), `${key}: no more`);
    }
    t.same(await ask(c, WRITE, "/a", "v"), [OK, "/a", ""]);
    t.same(await w.readMany(1), [[R_WATCH, "/a", ""]], "an identical write fires again");
    t.same(await ask(c, WRITE, "/a/", "v"), [ERROR, "/a/", ""], "failed write");
    t.ok(await w.silentFor(50), "a failed write fires nothing");
  },
);

t.test("RM of a subtree fires once per matching prefix watch with the request path", async (t) => {
  const db = await startTestDaemon(t);
  const w = await open(t, db);
  const c = await open(t, db);
  await seed(c, { "/w/x": "1", "/w/x/y": "2", "/w/z": "3", "/a/b/c/d": "4" });
  for (const path of ["/", "/w/", "/w/x", "/w", "/w/x/", "/a/b/"]) await ask(w, WATCH, path);
  t.same(await ask(c, RM, "/w/"), [OK, "/w/", ""]);
  t.same(await w.readMany(2), [
    [R_WATCH, "/w/", ""],
    [R_WATCH, "/w/", ""],
  ]);
  t.ok(await w.silentFor(50), "not the exact /w/x or /w, not the sub-prefix /w/x/");
  t.same(await ask(c, RM, "/a/b/c/"), [OK, "/a/b/c/", ""]);
  t.same(
    await w.readMany(2),
    [
      [R_WATCH, "/a/b/c/", ""],
      [R_WATCH, "/a/b/c/", ""],
    ],
    "/a/b/ and /",
  );
  t.same(await ask(c, RM, "/w/"), [NOENT, "/w/", ""]);
  t.ok(await w.silentFor(50), "NOENT fires nothing");
});

t.test(
  "the reply comes before the events, and an event can come before the reply to a later request",
  async (t) => {
    const db = await startTestDaemon(t);
    const a = await open(t, db);
    const b = await open(t, db);
    await ask(a, WATCH, "/e");
    await a.send(WRITE, "/e", "1");
    t.same(await a.readMany(2), [
      [OK, "/e", ""],
      [R_WATCH, "/e", ""],
    ]);
    await ask(b, WRITE, "/e", "2");
    await a.send(READ, "/e");
    t.same(await a.readMany(2), [
      [R_WATCH, "/e", ""],
      [R_READ, "/e", "2"],
    ]);
  },
);

t.test(
  "UNWATCH removes one registration with exactly that string, only of the same connection",
  async (t) => {
    const db = await startTestDaemon(t);
    const a = await open(t, db);
    const b = await open(t, db);
    await ask(a, WATCH, "/w");
    await ask(a, WATCH, "/w");
    t.same(await ask(a, UNWATCH, "/w/"), [NOENT, "/w/", ""]);
    t.same(await ask(b, UNWATCH, "/w"), [NOENT, "/w", ""], "not another connection's");
    t.same(await ask(a, UNWATCH, "/w"), [OK, "/w", ""]);
    await ask(b, WRITE, "/w", "1");
    t.same(await a.readMany(1), [[R_WATCH, "/w", ""]], "one registration left");
    t.same(await ask(a, UNWATCH, "/w"), [OK, "/w", ""]);
    t.same(await ask(a, UNWATCH, "/w"), [NOENT, "/w", ""]);
    await ask(b, WRITE, "/w", "2");
    t.ok(await a.silentFor(50));
    t.same(await ask(a, WATCH, "/p", "x"), [ERROR, "/p", ""], "a WATCH payload is consumed and refused");
    t.ok(await stillOpen(a));
  },
);

t.test("a disconnected watcher's registrations go with it", async (t) => {
  const db = await startTestDaemon(t);
  const w = await open(t, db);
  const c = await open(t, db);
  await ask(w, WATCH, "/");
  w.destroy();
  await new Promise((r) => setTimeout(r, 50));
  t.same(await ask(c, WRITE, "/x", "1"), [OK, "/x", ""]);
  t.same(await ask(c, READ, "/x"), [R_READ, "/x", "1"]);
});

t.test("every undefined reply byte is zero, whatever the request carried", async (t) => {
  const db = await startTestDaemon(t);
  const c = await open(t, db);
  const dirty = (type: number, path: string, payload = "") => {
    const frame = rawFrame(type, path, payload);
    frame.fill(0xaa, 1 + path.length + 1, 64); // bytes after the path's NUL
    frame.fill(0xbb, 65, 68); // padding
    return frame;
  };
  const requests: Array<[Buffer, number]> = [
    [dirty(WRITE, "/z", "v"), 1],
    [dirty(READ, "/z"), 1],
    [dirty(READ, "/none"), 1],
    [dirty(LIST, "/z"), 2],
    [dirty(MULTIREAD, "/z"), 2],
    [dirty(14, "/bad"), 1],
  ];
  for (const [request, replies] of requests) {
    await c.write(request);
    for (let i = 0; i < replies; i++) {
      const reply = await c.read();
      const pathEnd = 1 + reply.path.length;
      const undefinedBytes = Buffer.concat([reply.header.subarray(pathEnd, 68)]);
      t.ok(
        undefinedBytes.every((b) => b === 0),
        `type ${reply.type} "${reply.path}": zero after the path`,
      );
    }
  }
});

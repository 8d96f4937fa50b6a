import t from "tap";
import { Store } from "../../../shared/qubesdb/store.js";

const v = (s: string) => Buffer.from(s);

t.test("keys are kept in strcmp order and prefix operations are string prefixes", async (t) => {
  const store = new Store();
  for (const key of ["/b", "/a_", "/aZ", "/a9", "/a:", "/a@", "/a/", "/a.", "/a-", "/a", "/ab"])
    store.set(key, v(key));
  t.same(store.keys(""), ["/a", "/a-", "/a.", "/a/", "/a9", "/a:", "/a@", "/aZ", "/a_", "/ab", "/b"]);
  t.same(store.keys("/a/"), ["/a/"]);
  t.same(store.keys("/c"), []);
  t.same(
    store.entries("/a:").map(([k, val]) => [k, val.toString()]),
    [["/a:", "/a:"]],
  );
  t.equal(store.deletePrefix("/a"), 10);
  t.same(store.keys(""), ["/b"]);
  t.equal(store.delete("/b"), true);
  t.equal(store.delete("/b"), false);
  t.equal(store.size, 0);
});

t.test("set replaces without duplicating the key", async (t) => {
  const store = new Store();
  store.set("/k", v("1"));
  store.set("/k", v("2"));
  t.same(store.keys(""), ["/k"]);
  t.equal(store.get("/k")?.toString(), "2");
});

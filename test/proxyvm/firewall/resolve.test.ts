/**
 * The DNS cache's logic with a scripted lookup and an explicit clock: TTL
 * reuse and clamping, back-off that doubles, empty answers, shared lookups,
 * the bounded wait. (Real DNS traffic: dns.test.ts.)
 */
import t from "tap";
import { HostCache, type LookupFn } from "../../../proxyvm/firewall/resolve.js";

function scripted(answers: Record<string, Array<{ address: string; ttl: number }> | Error>) {
  const calls: string[] = [];
  const lookup: LookupFn = async (host, family) => {
    calls.push(`${family} ${host}`);
    const answer = answers[host];
    if (answer === undefined) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { lookup, calls };
}

t.test("an answer is reused until its TTL runs out, then resolved again", async (t) => {
  const { lookup, calls } = scripted({ "a.example": [{ address: "192.0.2.1", ttl: 30 }] });
  const cache = new HostCache(lookup);
  const first = await cache.resolveHosts(4, ["a.example"], 0);
  t.same([...first.resolved], [["a.example", ["192.0.2.1/32"]]]);
  t.equal(first.refreshAt, 30_000);
  await cache.resolveHosts(4, ["a.example"], 29_999);
  t.equal(calls.length, 1, "still fresh");
  await cache.resolveHosts(4, ["a.example"], 30_000);
  t.equal(calls.length, 2, "due at the TTL");
});

t.test("TTLs are clamped: 0 becomes the minimum, huge ones the maximum", async (t) => {
  const { lookup } = scripted({
    "zero.example": [{ address: "192.0.2.1", ttl: 0 }],
    "huge.example": [{ address: "192.0.2.2", ttl: 10_000_000 }],
  });
  const cache = new HostCache(lookup, { minTtlMs: 1000, maxTtlMs: 3_600_000 });
  t.equal((await cache.resolveHosts(4, ["zero.example"], 0)).refreshAt, 1000);
  t.equal((await cache.resolveHosts(4, ["huge.example"], 0)).refreshAt, 3_600_000);
});

t.test("failures are retried with a back-off that doubles up to its maximum", async (t) => {
  const { lookup } = scripted({});
  const cache = new HostCache(lookup, { backoffMs: 1000, maxBackoffMs: 4000 });
  const seen: Array<number | undefined> = [];
  let now = 0;
  for (let i = 0; i < 4; i++) {
    const result = await cache.resolveHosts(4, ["gone.example"], now);
    t.same([...result.failed], [["gone.example", "ENOTFOUND"]]);
    seen.push((result.refreshAt ?? 0) - now);
    now = result.refreshAt ?? now;
  }
  t.same(seen, [1000, 2000, 4000, 4000]);
});

t.test("a name without records of the family is an empty answer, not a failure", async (t) => {
  const { lookup } = scripted({ "v6only.example": [] });
  const cache = new HostCache(lookup, { emptyTtlMs: 60_000 });
  const result = await cache.resolveHosts(4, ["v6only.example"], 0);
  t.same([...result.resolved], [["v6only.example", []]]);
  t.equal(result.failed.size, 0);
  t.equal(result.refreshAt, 60_000);
});

t.test("IPv6 answers get /128 and answers of the wrong family are ignored", async (t) => {
  const { lookup } = scripted({
    "six.example": [
      { address: "2001:db8::5", ttl: 60 },
      { address: "192.0.2.9", ttl: 60 },
    ],
  });
  const result = await new HostCache(lookup).resolveHosts(6, ["six.example"], 0);
  t.same([...result.resolved], [["six.example", ["2001:db8::5/128"]]]);
});

t.test("a slow lookup is waited for at most waitMs, then reported late", async (t) => {
  let release: () => void = () => undefined;
  const lookup: LookupFn = async () => {
    await new Promise<void>((r) => {
      release = r;
    });
    return [{ address: "192.0.2.3", ttl: 60 }];
  };
  const cache = new HostCache(lookup);
  let late = 0;
  const first = await cache.resolveHosts(4, ["slow.example"], 0, { waitMs: 20, onLate: () => late++ });
  t.same([...first.failed], [["slow.example", "still resolving"]]);
  t.equal(first.refreshAt, undefined);
  const second = cache.resolveHosts(4, ["slow.example"], 0, { waitMs: 20 });
  release();
  await second;
  await new Promise((r) => setTimeout(r, 10));
  t.equal(late, 1, "the caller hears once the answer is in");
  const third = await cache.resolveHosts(4, ["slow.example"], 1);
  t.same([...third.resolved], [["slow.example", ["192.0.2.3/32"]]]);
});

/**
 * Seeded fuzzing of the rule parsers: rule strings come from QubesDB and
 * files, so any text must either parse to a rule that formats and re-parses
 * to itself, or fail with an InvalidInputError — never anything else.
 * The seed is fixed so a failure reproduces; set FUZZ_SEED to explore.
 */
import t from "tap";
import { parseFirewallXml } from "../../../dom0/firewall/index.js";
import { InvalidInputError } from "../../../shared/errors.js";
import {
  type FirewallRule,
  formatApiRule,
  formatQubesDbRule,
  parseApiRule,
  parseQubesDbRule,
  parseQubesDbRuleSet,
  planFirewallKeys,
} from "../../../shared/firewall/index.js";

const SEED = Number(process.env["FUZZ_SEED"] ?? 20261203);
const ROUNDS = 6000;

/** mulberry32: small, fast, good enough to pick test cases. */
function makeRandom(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  return { next, int, pick };
}

const random = makeRandom(SEED);
const { int, pick } = random;

const HOSTS = ["example.com", "www.qubes-os.org", "a", "x_y.z-1.org", "Mixed.Case.Org"];
const V4 = ["192.0.2.1", "198.51.100.0/24", "0.0.0.0/0", "203.0.113.77/31", "10.137.0.5/32"];
const V6 = ["2001:db8::1", "::/0", "2001:DB8:0:0::/48", "fd09:24ef:4179::a89:5/128", "::ffff:192.0.2.1"];

/** A random valid rule in API text. */
function randomValidRule(): string {
  const options: string[] = [`action=${pick(["accept", "drop"])}`];
  const proto = pick([undefined, "tcp", "udp", "icmp"]);
  if (proto) options.push(`proto=${proto}`);
  const destination = int(5);
  if (destination === 1) options.push(`dst4=${pick(V4)}`);
  if (destination === 2) options.push(`dst6=${pick(V6)}`);
  if (destination === 3) options.push(`${pick(["dsthost", "dstname"])}=${pick([...HOSTS, ...V4, ...V6])}`);
  if ((proto === "tcp" || proto === "udp") && int(2)) {
    const from = int(65536);
    options.push(int(2) ? `dstports=${from}` : `dstports=${from}-${from + int(65536 - from)}`);
  }
  if (proto === "icmp" && int(2)) options.push(`icmptype=${int(256)}`);
  if (int(4) === 0) options.push("specialtarget=dns");
  if (int(3) === 0) options.push(`expire=${int(2000000000)}`);
  // shuffle everything but action, which may still come anywhere
  for (let i = options.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [options[i], options[j]] = [options[j] as string, options[i] as string];
  }
  if (int(3) === 0) options.push(`comment=${pick(["web", "a b  c", "[lab]: 1;2,3./-_", "Zürich"])}`);
  return options.join(" ");
}

const NOISE = [..."=- /:.,;_[]09azAZ\t\n\u0000\u007f\u00e4\u2028\u{1f600}", "comment=", "dstports=", "=="];

/** Inserts, deletes, replaces or duplicates pieces of a rule string. */
function mutate(text: string): string {
  let result = text;
  for (let edits = 1 + int(3); edits > 0; edits--) {
    const at = int(result.length + 1);
    switch (int(5)) {
      case 0:
        result = result.slice(0, at) + pick(NOISE) + result.slice(at);
        break;
      case 1:
        result = result.slice(0, at) + result.slice(at + 1 + int(4));
        break;
      case 2:
        result = result.slice(0, at) + pick(NOISE) + result.slice(at + 1);
        break;
      case 3: {
        const words = result.split(" ");
        words.splice(int(words.length + 1), 0, pick(words));
        result = words.join(" ");
        break;
      }
      default:
        result = result.slice(0, at) + String(int(1000000)) + result.slice(at);
    }
  }
  return result;
}

function randomText(): string {
  return Array.from({ length: int(60) }, () => pick(NOISE)).join("");
}

/** Object keys sorted, so two rules compare equal whatever order their options came in. */
function sameRule(a: FirewallRule, b: FirewallRule): boolean {
  const sorted = (rule: FirewallRule) =>
    JSON.stringify(Object.entries(rule).sort(([x], [y]) => (x < y ? -1 : 1)));
  return sorted(a) === sorted(b);
}

/** Problems found, kept to the first few so a failure report stays readable. */
const problems: string[] = [];
function report(problem: string) {
  if (problems.length < 10) problems.push(problem);
}

/** Parses with `parse`; checks that a result formats canonically and re-parses to itself. */
function check(parse: (text: string) => FirewallRule, format: (rule: FirewallRule) => string, text: string) {
  let rule: FirewallRule;
  try {
    rule = parse(text);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) report(`${JSON.stringify(text)} threw ${String(error)}`);
    else if (/[\x00-\x1f\x7f]/.test(error.message))
      report(`${JSON.stringify(text)}: message has control characters`);
    return "invalid";
  }
  const canonical = format(rule);
  const again = parse(canonical);
  if (!sameRule(again, rule) || format(again) !== canonical)
    report(`${JSON.stringify(text)} is not stable: ${canonical}`);
  return "valid";
}

t.test("random valid rules parse, format canonically and re-parse to themselves", async (t) => {
  let valid = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const text = randomValidRule();
    if (check(parseApiRule, formatApiRule, text) === "valid") valid++;
    else report(`valid rule rejected: ${text}`);
    const published = formatQubesDbRule(parseApiRule(text));
    if (formatQubesDbRule(parseQubesDbRule(published)) !== published)
      report(`QubesDB form not stable: ${published}`);
  }
  t.equal(valid, ROUNDS);
  t.same(problems.splice(0), []);
});

t.test("mutated and random rule strings either parse stably or fail with InvalidInputError", async (t) => {
  const outcomes = { valid: 0, invalid: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const text = i % 4 === 3 ? randomText() : mutate(randomValidRule());
    outcomes[check(parseApiRule, formatApiRule, text)]++;
    outcomes[check(parseQubesDbRule, formatQubesDbRule, text)]++;
  }
  t.same(problems.splice(0), []);
  // Both outcomes must occur, or the mutations test nothing.
  t.ok(outcomes.valid > 100, `valid: ${outcomes.valid}`);
  t.ok(outcomes.invalid > 100, `invalid: ${outcomes.invalid}`);
});

t.test("mutated published rule sets either parse or fail with InvalidInputError", async (t) => {
  for (let i = 0; i < 1000; i++) {
    const rules = Array.from({ length: int(6) }, () => parseApiRule(randomValidRule()));
    const family = pick([4, 6] as const);
    const entries = new Map(planFirewallKeys(rules, family, 1000000000));
    if (int(2)) {
      const key = pick([...entries.keys()]);
      const value = entries.get(key) ?? "";
      entries.delete(key);
      entries.set(int(3) ? key : mutate(key), int(2) ? mutate(value) : value);
    }
    try {
      parseQubesDbRuleSet(entries, pick([4, 6] as const));
    } catch (error) {
      if (!(error instanceof InvalidInputError)) report(`threw ${String(error)}`);
      else if (/[\x00-\x1f\x7f]/.test(error.message))
        report(`message has control characters: ${error.message}`);
    }
  }
  t.same(problems.splice(0), []);
});

t.test("mutated firewall.xml either parses or fails with InvalidInputError", async (t) => {
  const base = `<firewall version="2"><rules><rule><properties><property name="action">accept</property><property name="proto">tcp</property><property name="dstports">443</property></properties></rule></rules></firewall>`;
  const v1 = `<QubesFirewallRules policy="deny" dns="allow"><rule address="192.0.2.0" netmask="24" port="22" toport="23"/></QubesFirewallRules>`;
  for (let i = 0; i < 1500; i++) {
    try {
      parseFirewallXml(mutate(pick([base, v1])));
    } catch (error) {
      if (!(error instanceof InvalidInputError)) report(`threw ${String(error)}`);
    }
  }
  t.same(problems.splice(0), []);
});

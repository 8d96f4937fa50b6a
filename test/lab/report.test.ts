import t from "tap";
import { formatProbe, formatSummary, terminalStyle } from "../../scripts/lab/report.js";

const passed = { name: "probe one", ok: true, observed: "saw it", ms: 1234 };
const failed = { name: "probe two", ok: false, observed: "did not" };

t.test("probe lines are plain when piped", async (t) => {
  const plain = { color: false };
  t.equal(formatProbe(plain, passed), "✓ probe one (1.2 s): saw it");
  t.equal(formatProbe(plain, failed), "✗ probe two: did not");
  t.equal(formatSummary(plain, [passed, failed]), "1 of 2 probes failed");
  t.equal(formatSummary(plain, [passed]), "all 1 probes passed");
});

t.test("probe lines are coloured on a terminal", async (t) => {
  t.equal(formatProbe({ color: true }, failed), "\u001b[31m✗\u001b[0m \u001b[1mprobe two\u001b[0m: did not");
});

t.test("colour is used only on a terminal and never with NO_COLOR", async (t) => {
  const saved = process.env["NO_COLOR"];
  t.teardown(() => {
    if (saved === undefined) delete process.env["NO_COLOR"];
    else process.env["NO_COLOR"] = saved;
  });
  delete process.env["NO_COLOR"];
  t.same(terminalStyle({ isTTY: true }), { color: true });
  t.same(terminalStyle({ isTTY: false }), { color: false });
  t.same(terminalStyle({}), { color: false });
  process.env["NO_COLOR"] = "1";
  t.same(terminalStyle({ isTTY: true }), { color: false });
});

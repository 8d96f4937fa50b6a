/**
 * `serve` republishes at the moment a firewall rule expires, with the timer
 * built from the files when it starts (so also after a restart), and stops
 * cleanly. Real daemons from dist/ (run `npm run build` first).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { serve } from "../../../dom0/emitter/serve.js";
import { saveFirewall } from "../../../dom0/firewall/index.js";
import { createVm, setProperty } from "../../../dom0/model/edit.js";
import { withStore } from "../../../dom0/store/store.js";
import { startDaemons } from "../../../scripts/bench/emitter-topology.js";
import { parseApiRule } from "../../../shared/firewall/index.js";
import { createLogger } from "../../../shared/log.js";
import { connectQubesDb } from "../../../shared/qubesdb/client.js";

const UUID = "00000000-0000-4000-8000-000000000002";

t.test("serve republishes when a rule expires and when a firewall.xml changes on disk", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `dom0-serve-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const qubesDir = join(dir, "qubes");
  const runDir = join(dir, "run");
  await withStore(qubesDir, (doc) => {
    createVm(doc, { name: "tpl", vmClass: "TemplateVM", label: "black", uuid: UUID });
    createVm(doc, { name: "sys-fw", vmClass: "AppVM", label: "green", template: "tpl", uuid: UUID });
    setProperty(doc, "sys-fw", "provides_network", "True");
    createVm(doc, { name: "work", vmClass: "AppVM", label: "red", template: "tpl", uuid: UUID });
    setProperty(doc, "work", "netvm", "sys-fw");
  });
  const now = Math.floor(Date.now() / 1000);
  const rules = [parseApiRule(`action=accept dst4=192.0.2.1 expire=${now + 3}`), parseApiRule("action=drop")];
  await saveFirewall(qubesDir, "work", rules, now);
  const daemons = await startDaemons(runDir, ["sys-fw", "work"]);
  t.teardown(() => daemons.stop());
  const proxy = await connectQubesDb({ socket: join(runDir, "qubesdb.sys-fw.sock"), reconnect: false });
  t.teardown(() => proxy.close());

  const lines: string[] = [];
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const running = serve(
    { qubesDir, runDir, log: createLogger({ level: "info", write: (line) => lines.push(line) }) },
    stop.signal,
  );
  const waitFor = async (check: () => Promise<boolean>, what: string) => {
    // A timeout for a hung test on a loaded machine, not a speed target.
    const deadline = Date.now() + 60_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const base = "/qubes-firewall/10.137.0.3";
  await waitFor(async () => (await proxy.readText(`${base}/0000`)) !== undefined, "the first publication");
  t.equal(await proxy.readText(`${base}/0000`), "action=accept dst4=192.0.2.1/32");
  await waitFor(async () => lines.some((line) => line.startsWith("INFO ready")), "ready");
  t.equal(
    lines.find((line) => line.startsWith("INFO ready")),
    `INFO ready vms=2 writes=25 removes=0 next_expiry=${now + 3}`,
  );
  await waitFor(async () => (await proxy.readText(`${base}/0000`)) === undefined, "the rule to expire");
  t.ok(Date.now() / 1000 >= now + 3, "not before its expiry");
  t.same(
    [
      await proxy.readText(`${base}/0001`),
      await proxy.readText(`${base}/policy`),
      await proxy.readText(base),
    ],
    ["action=drop", "drop", ""],
  );
  // A firewall.xml written by someone else (not a qvm-* command) is noticed on disk.
  await saveFirewall(qubesDir, "work", [parseApiRule("action=accept proto=udp dstports=53")], now);
  await waitFor(
    async () => (await proxy.readText(`${base}/0000`)) === "action=accept proto=udp dstports=53-53",
    "the new file",
  );
  t.equal(await proxy.readText(`${base}/0001`), undefined);
  stop.abort();
  await running;
  t.equal(lines.at(-1), "INFO stopped");
});

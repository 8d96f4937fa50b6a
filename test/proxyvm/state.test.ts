import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { openFileStore } from "../../proxyvm/state.js";
import { createLogger } from "../../shared/log.js";

t.test("vif facts survive a reopen, unreadable files are ignored and reported", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "agent-state-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line) });
  const store = openFileStore(dir, log);
  store.put("vif3.0", {
    event: { vif: "vif3.0", ip: "10.137.0.5", online: true },
    applied: { ip: "10.137.0.5" },
  });
  store.put("vif4.0", { event: { vif: "vif4.0", ip: "10.137.0.6", online: true } });
  store.remove("vif4.0");
  writeFileSync(join(dir, "vifs", "vif9.0.json"), "{not json");
  t.same(readdirSync(join(dir, "vifs")).sort(), ["vif3.0.json", "vif9.0.json"], "no temporary files left");
  const reopened = openFileStore(dir, log);
  t.same([...reopened.all().keys()], ["vif3.0"]);
  t.same(reopened.get("vif3.0"), {
    event: { vif: "vif3.0", ip: "10.137.0.5", online: true },
    applied: { ip: "10.137.0.5" },
  });
  t.equal(lines.length, 1);
  t.match(lines[0], /^WARN ignoring unreadable vif state file=\S+vif9\.0\.json error=/);
});

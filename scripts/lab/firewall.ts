/** The firewall as the lab drives it: `qvm-firewall` in dom0, error reports in the ProxyVM's QubesDB. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runDom0 } from "./dom0.js";
import { readKey, withQubesDb } from "./qubesdb.js";
import type { LabState } from "./state.js";
import { vmOf } from "./topology.js";

export function qvmFirewall(state: LabState, vm: string, args: readonly string[]): Promise<string> {
  return runDom0(state, "qvm-firewall", ["--qubes-dir", state.qubesDir, vm, ...args]);
}

/** `qvm-firewall VM set --file F`: the whole list replaced in one step. */
export function setRules(state: LabState, vm: string, rules: readonly string[]): Promise<string> {
  mkdirSync(join(state.dir, "tmp"), { recursive: true });
  const file = join(state.dir, "tmp", `rules-${vm}.txt`);
  writeFileSync(file, `${rules.join("\n")}\n`);
  return qvmFirewall(state, vm, ["set", "--file", file]);
}

/** `/qubes-firewall-error/N` in the ProxyVM's QubesDB (the agent's report). */
export function firewallError(state: LabState, native: string): Promise<string | undefined> {
  return readKey(vmOf(state, "proxyvm").qubesdbSocket, `/qubes-firewall-error/${native}`);
}

/**
 * Publishes a rule set the agent cannot parse, the way a buggy or compromised
 * dom0 would: straight into the ProxyVM's QubesDB, in the published order
 * (subtree removed, rules, then the commit key).
 */
export function publishBrokenRules(state: LabState, native: string): Promise<void> {
  return withQubesDb(vmOf(state, "proxyvm").qubesdbSocket, async (db) => {
    await db.rm(`/qubes-firewall/${native}/`);
    await db.write(`/qubes-firewall/${native}/policy`, "drop");
    await db.write(`/qubes-firewall/${native}/0000`, "action=accept proto=bogus");
    await db.write(`/qubes-firewall/${native}`, "");
  });
}

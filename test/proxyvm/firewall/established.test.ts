/**
 * Established flows after a rule change: a real long-lived TCP connection
 * survives a change that still allows it (re-stamped with the new
 * generation) and is cut by one that forbids it, without any conntrack walk.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import t from "tap";
import { compileFullScript, compileVmScript, formatGeneration } from "../../../proxyvm/firewall/compile.js";
import { applyNftScript } from "../../../proxyvm/system/nft.js";
import { parseQubesDbRule } from "../../../shared/firewall/index.js";
import { inNetns, netnsSkipReason, spawnInNetns, waitFor } from "../../helpers/netns.js";
import { createTopology, PROBE_PY, SERVER, VM1 } from "./topology.js";

t.test(
  "a long-lived TCP connection is re-judged after a rule change",
  { skip: netnsSkipReason() },
  async (t) => {
    const topo = await createTopology(t);
    const netns = { netns: topo.router };
    const rules = (texts: string[]) => ({
      address: VM1,
      rules: texts.map(parseQubesDbRule),
      resolved: new Map(),
    });
    const first = compileFullScript(4, [rules(["action=accept proto=tcp dstports=22-22"])]);
    await applyNftScript(first.script, netns);

    const child = spawn(
      "nsenter",
      [`--net=/run/netns/${topo.client}`, "python3", PROBE_PY, "session", VM1, SERVER, "22"],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    t.teardown(() => {
      child.kill("SIGKILL");
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async () => String((await lines.next()).value);
    const send = async (text: string) => {
      child.stdin.write(`${text}\n`);
      return next();
    };
    t.equal(await next(), "connected");
    t.equal(await send("one"), "ok");

    const marks = async () => {
      const { stdout } = await inNetns(
        topo.router,
        "conntrack",
        ["-L", "-p", "tcp", "--dport", "22", "-s", VM1],
        {
          reject: false,
        },
      );
      return String(stdout);
    };
    const generation1 = formatGeneration(first.vms[0]?.generation ?? 0);
    t.match(
      await marks(),
      new RegExp(`mark=${Number(generation1)}\\b`),
      "the flow carries the generation stamp",
    );

    await t.test("a change that still allows the flow keeps it, re-stamped", async (t) => {
      const update = compileVmScript(
        4,
        rules(["action=drop proto=udp", "action=accept proto=tcp dstports=22-22"]),
      );
      await applyNftScript(update.script, netns);
      t.equal(await send("two"), "ok");
      t.match(
        await marks(),
        new RegExp(`mark=${update.vm.generation}\\b`),
        "stamped with the new generation",
      );
    });

    await t.test("a change that forbids the flow cuts it", async (t) => {
      await applyNftScript(
        compileVmScript(4, rules(["action=accept proto=tcp dstports=80-80"])).script,
        netns,
      );
      t.not(await send("three"), "ok");
      t.not(await send("four"), "ok");
    });

    await t.test("allowing it again lets the same connection continue", async (t) => {
      await applyNftScript(compileVmScript(4, rules(["action=accept proto=tcp"])).script, netns);
      // the client's TCP retransmits what the cut held back; each try waits up to 1.5 s for it
      const answers: string[] = [];
      for (let i = 0; i < 8 && answers.at(-1) !== "ok"; i++) {
        answers.push(await send(`five${i}`));
        if (answers.at(-1) !== "ok" && answers.at(-1) !== "timeout")
          await new Promise((r) => setTimeout(r, 500));
      }
      t.equal(answers.at(-1), "ok", `answers: ${answers.join(",")}`);
    });
  },
);

t.test(
  "a flow where only the server sends is cut in the reply direction and resumes when allowed",
  { skip: netnsSkipReason() },
  async (t) => {
    const topo = await createTopology(t);
    const netns = { netns: topo.router };
    const rules = (texts: string[]) => ({
      address: VM1,
      rules: texts.map(parseQubesDbRule),
      resolved: new Map(),
    });
    await applyNftScript(
      compileFullScript(4, [rules(["action=accept proto=tcp dstports=7000-7000"])]).script,
      netns,
    );
    const pusher = spawnInNetns(t, topo.server, "python3", [PROBE_PY, "push", "7000"]);
    await new Promise<void>((r) => pusher.stdout?.once("data", () => r()));
    const watcher = spawnInNetns(t, topo.client, "python3", [PROBE_PY, "watch", VM1, SERVER, "7000"]);
    let ticks = 0;
    createInterface({ input: watcher.stdout! }).on("line", (line) => {
      if (line === "tick") ticks++;
    });
    const ticksDuring = async (ms: number) => {
      const before = ticks;
      await new Promise((r) => setTimeout(r, ms));
      return ticks - before;
    };
    t.ok((await ticksDuring(1000)) >= 5, "ticks arrive while allowed");
    await applyNftScript(compileVmScript(4, rules(["action=accept proto=tcp dstports=80-80"])).script, netns);
    await ticksDuring(300); // what was already in flight
    t.equal(await ticksDuring(1000), 0, "no tick arrives once the rules forbid the flow");
    await applyNftScript(compileVmScript(4, rules(["action=accept proto=tcp"])).script, netns);
    const resumed = await waitFor(() => ticks > 0 && ticksDuring(500).then((n) => n > 0), 8000);
    t.ok(resumed, "ticks resume (the server retransmits; the reply chain re-stamps the flow)");
  },
);

import t from "tap";
import { createAllowList } from "../../../proxyvm/nat/allow-list.js";

// The nft side is a recording function: this tests which scripts the allow-list
// writes (logic); the scripts themselves run against the kernel in anti-spoofing.test.ts.
function recorder(failures: boolean[] = []) {
  const scripts: string[] = [];
  const nft = async (script: string) => {
    scripts.push(script);
    if (failures.shift() === true) throw new Error("nft failed");
  };
  return { scripts, nft };
}

const pair = (iif: string, address: string) => ({ iif, address, family: 4 as const });
const declares = (script: string) => script.includes("flush chain");

t.test("the table is declared by the first transaction only; later ones change elements", async (t) => {
  const { scripts, nft } = recorder();
  const allow = createAllowList(nft);
  await allow.change([pair("vif1.0", "10.137.0.2")], []);
  await allow.change([pair("vif2.0", "10.137.0.3")], []);
  t.ok(declares(scripts[0] ?? ""), "first: declared");
  t.equal(
    scripts[1],
    'add element inet qubes-fakeip-antispoof allowed4 { "vif2.0" . 10.137.0.3 }\n',
    "second: one element added, nothing removed (no grace period)",
  );
});

t.test("an element-only transaction that fails is tried once more declaring the table", async (t) => {
  const { scripts, nft } = recorder([false, true]);
  const allow = createAllowList(nft);
  await allow.change([pair("vif1.0", "10.137.0.2")], []);
  await allow.change([pair("vif2.0", "10.137.0.3")], []);
  t.equal(scripts.length, 3);
  t.notOk(declares(scripts[1] ?? ""), "the element-only attempt");
  t.ok(declares(scripts[2] ?? ""), "then the whole declaration");
  t.match(scripts[2], '"vif2.0" . 10.137.0.3');
});

t.test("after a failed change the next one declares again", async (t) => {
  const { scripts, nft } = recorder([true]);
  const allow = createAllowList(nft);
  await t.rejects(allow.change([pair("vif1.0", "10.137.0.2")], []));
  await allow.change([pair("vif1.0", "10.137.0.2")], []);
  t.ok(declares(scripts[1] ?? ""));
});

t.test(
  "adopt: the table declared by the connected sets' transaction, inner maps read from the kernel",
  async (t) => {
    const { scripts, nft } = recorder();
    const inner = { v4: [["10.137.0.2", "10.200.0.10"]] as [string, string][], v6: [] };
    const allow = createAllowList(nft, { innerMaps: () => inner });
    allow.adopt({ v4: [["10.137.0.2", "10.200.0.10"]], v6: [] });
    inner.v4.push(["10.137.0.3", "10.200.0.10"]);
    await allow.change([pair("vif2.0", "10.137.0.3")], []);
    t.equal(
      scripts[0],
      [
        'add element inet qubes-fakeip-antispoof allowed4 { "vif2.0" . 10.137.0.3 }',
        "add element inet qubes-fakeip-antispoof inner4 { 10.137.0.3 : 10.200.0.10 }",
        "",
      ].join("\n"),
      "no declaration, no map flush: only what is new",
    );
  },
);

t.test("deferred removals ride on the next change", async (t) => {
  const { scripts, nft } = recorder();
  const allow = createAllowList(nft, { delayMs: 60_000 });
  await allow.change([pair("vif1.0", "10.137.0.2")], []);
  allow.deferRemove([pair("vif1.0", "10.137.0.2")], []);
  await allow.change([pair("vif2.0", "10.137.0.3")], []);
  t.match(scripts[1], 'delete element inet qubes-fakeip-antispoof allowed4 { "vif1.0" . 10.137.0.2 }');
  t.match(scripts[1], 'add element inet qubes-fakeip-antispoof allowed4 { "vif2.0" . 10.137.0.3 }');
  await allow.flush();
  t.equal(scripts.length, 2, "nothing left to flush");
});

import t from "tap";
import { planDom0Commands } from "../../scripts/lab/dom0.js";
import { natNamespaceOf, planTopology } from "../../scripts/lab/topology.js";

const options = {
  dir: "/run/lab",
  clients: 2,
  fakeIp: "10.152.152.11",
  fakeGateway: "10.152.152.10",
  fakeNetmask: "255.255.192.0",
};

t.test("the plan names every VM, namespace, vif and socket from the run id and domid block", async (t) => {
  const plan = planTopology(options, "ab12cd", 1280);
  t.equal(plan.prefix, "qfl-ab12cd-");
  t.same(
    plan.vms.map((v) => [v.name, v.role, v.ns, v.domid, v.vif, v.qubesdbSocket]),
    [
      ["sys-net", "netvm", "qfl-ab12cd-sys-net", 1281, "vif1281.0", "/run/lab/run/qubesdb.sys-net.sock"],
      [
        "sys-firewall",
        "proxyvm",
        "qfl-ab12cd-sys-firewall",
        1282,
        "vif1282.0",
        "/run/lab/run/qubesdb.sys-firewall.sock",
      ],
      ["anon-1", "client", "qfl-ab12cd-anon-1", 1283, "vif1283.0", "/run/lab/run/qubesdb.anon-1.sock"],
      ["anon-2", "client", "qfl-ab12cd-anon-2", 1284, "vif1284.0", "/run/lab/run/qubesdb.anon-2.sock"],
      ["work", "client", "qfl-ab12cd-work", 1285, "vif1285.0", "/run/lab/run/qubesdb.work.sock"],
    ],
  );
  t.same(plan.vms[2]?.features, {
    "net.fake-ip": "10.152.152.11",
    "net.fake-gateway": "10.152.152.10",
    "net.fake-netmask": "255.255.192.0",
  });
  t.same(plan.vms[4]?.features, {}, "the plain client has no fake IP");
});

t.test("the agent's NAT namespace is named after the vif, unprefixed", async (t) => {
  t.equal(natNamespaceOf("vif1283.0"), "vif1283.0-nat");
});

t.test("every vif name fits IFNAMSIZ even with the agent's suffixes", async (t) => {
  const plan = planTopology({ ...options, clients: 120 }, "ffffff", 249 * 128);
  for (const vm of plan.vms) t.ok(`${vm.vif}-p`.length <= 15, `${vm.vif}-p fits`);
});

t.test(
  "dom0 is driven with qvm-* commands like an admin would, features only for fake-IP clients",
  async (t) => {
    const plan = planTopology({ ...options, clients: 1 }, "ab12cd", 128);
    const lines = planDom0Commands(plan).map((c) => [c.command, ...c.args.slice(2)].join(" "));
    t.same(lines, [
      "qvm-create --class TemplateVM --label black debian-12",
      "qvm-create --class AppVM --template debian-12 --label red sys-net",
      "qvm-prefs sys-net provides_network True",
      "qvm-prefs sys-net netvm ",
      "qvm-create --class AppVM --template debian-12 --label green sys-firewall",
      "qvm-prefs sys-firewall provides_network True",
      "qvm-prefs sys-firewall netvm sys-net",
      "qvm-create --class AppVM --template debian-12 --label purple anon-1",
      "qvm-prefs anon-1 netvm sys-firewall",
      "qvm-features anon-1 net.fake-ip 10.152.152.11",
      "qvm-features anon-1 net.fake-gateway 10.152.152.10",
      "qvm-features anon-1 net.fake-netmask 255.255.192.0",
      "qvm-create --class AppVM --template debian-12 --label blue work",
      "qvm-prefs work netvm sys-firewall",
    ]);
    t.ok(
      planDom0Commands(plan).every((c) => c.args[0] === "--qubes-dir" && c.args[1] === "/run/lab/qubes"),
      "every command names the lab's store",
    );
  },
);

import t from "tap";
import { parseQvmLs, planDom0Commands } from "../../scripts/lab/dom0.js";
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
    const groups = planDom0Commands(plan);
    t.same(
      groups.map((g) => g.length),
      [6, 3],
      "every qvm-create first, then one group per fake-IP client's features",
    );
    const lines = groups.flat().map((c) => [c.command, ...c.args.slice(2)].join(" "));
    t.same(lines, [
      "qvm-create --class TemplateVM --label black debian-12",
      "qvm-create --class AppVM --template debian-12 --label red --property provides_network=True sys-net",
      "qvm-prefs sys-net netvm ",
      "qvm-create --class AppVM --template debian-12 --label green --property provides_network=True --property netvm=sys-net sys-firewall",
      "qvm-create --class AppVM --template debian-12 --label purple --property netvm=sys-firewall anon-1",
      "qvm-create --class AppVM --template debian-12 --label blue --property netvm=sys-firewall work",
      "qvm-features anon-1 net.fake-ip 10.152.152.11",
      "qvm-features anon-1 net.fake-gateway 10.152.152.10",
      "qvm-features anon-1 net.fake-netmask 255.255.192.0",
    ]);
    t.ok(
      groups.flat().every((c) => c.args[0] === "--qubes-dir" && c.args[1] === "/run/lab/qubes"),
      "every command names the lab's store",
    );
  },
);

t.test("native IPs are read from qvm-ls's IP column", async (t) => {
  const text = [
    "NAME          STATE    CLASS       LABEL   TEMPLATE   NETVM         IP          VISIBLE-IP",
    "anon-1        Running  AppVM       purple  debian-12  sys-firewall  10.137.0.4  10.152.152.11",
    "debian-12     Halted   TemplateVM  black   -          -             -           -",
    "dom0          Running  AdminVM     black   -          -             -           -",
  ].join("\n");
  t.same([...parseQvmLs(text)], [["anon-1", "10.137.0.4"]]);
  t.throws(() => parseQvmLs("NAME STATE\n"), {
    message: 'Cannot read qvm-ls output: no NAME and IP columns in "NAME STATE"',
  });
});

/**
 * The hotplug hook without a daemon: offline, bad input, dry run.
 */

import { existsSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { inNetns, ipJson, netnsSkipReason, removeNetns } from "../helpers/netns.js";
import { addFakeVm, askUpstream, createTopology, UPSTREAM } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test("offline removes everything the vif had", { skip }, async (t) => {
  const topo = await createTopology(t);
  const vm = await addFakeVm(topo, "10.137.0.61", V, G);
  t.ok(existsSync(`/run/netns/${vm.vif}-nat`));
  await topo.agent(["vif", "offline", vm.vif, "--ip", "10.137.0.61"]);
  t.notOk(existsSync(`/run/netns/${vm.vif}-nat`), "the NAT namespace is gone");
  const links = (await ipJson(topo.proxy, ["link", "show"])) as { ifname: string }[];
  t.notOk(
    links.some((l) => l.ifname === vm.vif),
    "the ProxyVM-side vif is gone",
  );
  const set = await inNetns(topo.proxy, "nft", ["list", "set", "inet", "qubes-fakeip-antispoof", "allowed4"]);
  t.notMatch(String(set.stdout), "10.137.0.61", "the allow-list entry is gone");
  t.notOk(existsSync(`${topo.stateDir}/vifs/${vm.vif}.json`), "the recorded facts are gone");
});

t.test("invalid input leaves the vif blocked with the reason", { skip }, async (t) => {
  const topo = await createTopology(t);
  const vm = await topo.addVm({ native: "10.137.0.71", address: V, gatewayOfVm: V });
  await topo.write("/mapped-ip/10.137.0.71/visible-ip", V);
  await topo.write("/mapped-ip/10.137.0.71/visible-gateway", V);
  const result = await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.71"], { reject: false });
  t.equal(result.exitCode, 1);
  t.equal(
    result.stderr.trim(),
    `qubes-fakeip-agent: Cannot use visible IP "${V}" for "${vm.vif}": it equals the visible gateway`,
  );
  t.equal(await askUpstream(vm.ns, UPSTREAM, { timeoutMs: 1000 }), "", "nothing is forwarded");
  const bad = await topo.agent(["vif", "online", "eth0", "--ip", "10.137.0.71"], { reject: false });
  t.equal(bad.exitCode, 2);
  t.equal(bad.stderr.trim(), 'qubes-fakeip-agent: Cannot handle vif "eth0": not a vif name vifDOMID.IDX');
});

t.test("--dry-run prints the plan and touches nothing", { skip }, async (t) => {
  const topo = await createTopology(t);
  const vm = await topo.addVm({ native: "10.137.0.81", address: V, gatewayOfVm: G });
  await topo.write("/mapped-ip/10.137.0.81/visible-ip", V);
  await topo.write("/mapped-ip/10.137.0.81/visible-gateway", G);
  const result = await topo.agent(["--dry-run", "vif", "online", vm.vif, "--ip", "10.137.0.81"]);
  t.match(result.stdout, `ip netns add ${vm.vif}-nat\n`);
  t.match(result.stdout, `ip link set dev ${vm.vif} netns ${vm.vif}-nat\n`);
  t.match(result.stdout, `ip ${"-n"} ${vm.vif}-nat addr add ${G}/32 dev ${vm.vif}\n`);
  t.match(result.stdout, `ip saddr ${V} ip saddr set 10.137.0.81 fwd to "${vm.vif}-p"`);
  t.match(result.stdout, `add element inet qubes-fakeip-antispoof allowed4 { "${vm.vif}" . 10.137.0.81 }`);
  t.notOk(existsSync(`/run/netns/${vm.vif}-nat`), "no namespace was created");
  t.notOk(existsSync(`${topo.stateDir}/vifs/${vm.vif}.json`), "nothing was recorded");
  const tables = await inNetns(topo.proxy, "nft", ["list", "tables"]);
  t.equal(String(tables.stdout), "", "no nft table was created");
});

t.test(
  "the daemon's --dry-run prints one full convergence against the kernel and exits",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const vm = await addFakeVm(topo, "10.137.0.91", V, G);
    const before = await ipJson(topo.proxy, ["link", "show", "dev", vm.vif]);
    const result = await topo.agent(["--dry-run"]);
    t.equal(result.exitCode, 0);
    t.match(result.stdout, `# ${vm.vif}\n`);
    t.notMatch(result.stdout, "ip netns add", "the namespace exists: no structural step is planned");
    t.match(result.stdout, `ip -n ${vm.vif}-nat addr add ${G}/32 dev ${vm.vif}\n`);
    t.match(result.stdout, "# nfnetlink (nft cannot express the checksum offsets)");
    t.same(await ipJson(topo.proxy, ["link", "show", "dev", vm.vif]), before, "nothing was touched");
  },
);

t.test("a move that fails never marks Xen's own vif as the agent's", { skip }, async (t) => {
  // The move, the veth pair and the ownership mark go to the kernel by name; the
  // mark must only ever land on the pair the agent created. Here the move is
  // refused (the NAT namespace already holds a link of that name), so the pair
  // is refused too (the name is still Xen's) and the mark must not be set.
  const topo = await createTopology(t);
  const vm = await topo.addVm({ native: "10.137.0.72", address: V, gatewayOfVm: G });
  await topo.write("/mapped-ip/10.137.0.72/visible-ip", V);
  await topo.write("/mapped-ip/10.137.0.72/visible-gateway", G);
  const nat = `${vm.vif}-nat`;
  await execa("ip", ["netns", "add", nat]);
  t.teardown(() => removeNetns(nat));
  await execa("ip", ["-n", nat, "link", "add", "dev", vm.vif, "type", "veth", "peer", "name", "squat0"]);
  const result = await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.72"], { reject: false });
  t.equal(result.exitCode, 1, "the hook fails");
  t.match(result.stderr, vm.vif, "naming the vif");
  const [xen] = (await ipJson(topo.proxy, ["link", "show", "dev", vm.vif])) as {
    ifalias?: string;
    link_type: string;
  }[];
  t.ok(xen !== undefined, "Xen's vif is still in the ProxyVM");
  t.not(xen?.ifalias, "qubes-fakeip-nat", "and not marked as the agent's");
  t.equal(await askUpstream(vm.ns, UPSTREAM, { timeoutMs: 1000 }), "", "nothing is forwarded");
});

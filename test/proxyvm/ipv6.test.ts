/**
 * IPv6: forwarded for VMs without a fake IP; for fake-IP VMs only with
 * `visible-ip6`, then rewritten statelessly like IPv4 (neighbour discovery
 * answered in the NAT namespace, like ARP).
 */
import t from "tap";
import { ipJson, netnsSkipReason } from "../helpers/netns.js";
import { askUpstream, createTopology, UPSTREAM, UPSTREAM6, VM_MAC } from "./topology.js";

const skip = netnsSkipReason();
const N6 = "fd09:24ef:4179::a89:21";

t.test("a VM without a fake IP reaches upstream over IPv6 with its native address", { skip }, async (t) => {
  const topo = await createTopology(t);
  const vm = await topo.addVm({ native: "10.137.0.21", address6: N6 });
  await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.21", "--ip", N6, "--mac", VM_MAC]);
  t.equal(await askUpstream(vm.ns, UPSTREAM6), N6);
  t.equal(await askUpstream(vm.ns, UPSTREAM), "10.137.0.21");
});

t.test(
  "a fake-IP VM with visible-ip6 is rewritten both ways and sees only its visible IPv6 addresses",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const V6 = "fd00:a::10";
    const G6 = "fd00:a::1";
    const vm = await topo.addVm({
      native: "10.137.0.31",
      address: "10.200.0.10",
      gatewayOfVm: "10.200.0.1",
      address6: V6,
      gateway6OfVm: G6,
    });
    await topo.write("/mapped-ip/10.137.0.31/visible-ip", "10.200.0.10");
    await topo.write("/mapped-ip/10.137.0.31/visible-gateway", "10.200.0.1");
    await topo.write("/mapped-ip/10.137.0.31/visible-ip6", V6);
    await topo.write("/mapped-ip/10.137.0.31/visible-gateway6", G6);
    const N = "fd09:24ef:4179::a89:31";
    await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.31", "--ip", N, "--mac", VM_MAC]);
    t.equal(await askUpstream(vm.ns, UPSTREAM6), N, "upstream sees the native IPv6 address");
    t.equal(await askUpstream(vm.ns, UPSTREAM), "10.137.0.31");
    const neigh = (await ipJson(vm.ns, ["-6", "neigh", "show", "dev", "eth0"])) as { dst: string }[];
    t.same(
      neigh.map((n) => n.dst).filter((d) => !d.startsWith("fe80:")),
      [G6],
      "the VM's IPv6 neighbours: only its visible gateway",
    );
  },
);

t.test("a fake-IP VM without visible-ip6 gets no IPv6", { skip }, async (t) => {
  const topo = await createTopology(t);
  const vm = await topo.addVm({
    native: "10.137.0.41",
    address: "10.200.0.10",
    gatewayOfVm: "10.200.0.1",
    address6: "fd09:24ef:4179::a89:41",
  });
  await topo.write("/mapped-ip/10.137.0.41/visible-ip", "10.200.0.10");
  await topo.write("/mapped-ip/10.137.0.41/visible-gateway", "10.200.0.1");
  await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.41", "--ip", "fd09:24ef:4179::a89:41"]);
  t.equal(await askUpstream(vm.ns, UPSTREAM6, { timeoutMs: 800 }), "", "IPv6 is dropped");
  t.equal(await askUpstream(vm.ns, UPSTREAM), "10.137.0.41", "IPv4 works");
});

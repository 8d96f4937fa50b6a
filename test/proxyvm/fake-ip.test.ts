/**
 * The fake-IP data plane, driven by the hotplug hook without a daemon, with real packets.
 */

import t from "tap";
import { ipJson, netnsSkipReason } from "../helpers/netns.js";
import { addFakeVm, addressesOf, askUpstream, createTopology, GATEWAY, pings } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test(
  "a fake-IP VM sees only its visible address and gateway, upstream sees its native one",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const vm = await addFakeVm(topo, "10.137.0.21", V, G);
    t.equal(await askUpstream(vm.ns), "10.137.0.21", "upstream sees the native address");
    t.ok(await pings(vm.ns, G), "the VM reaches its visible gateway");
    t.ok(await pings(topo.proxy, "10.137.0.21"), "the ProxyVM reaches the VM by its native address");
    const neigh = (await ipJson(vm.ns, ["neigh", "show", "dev", "eth0"])) as { dst: string }[];
    t.same(neigh.map((n) => n.dst).sort(), [G], "the VM's neighbours: only its visible gateway");
    t.same(
      await addressesOf(`${vm.vif}-nat`, vm.vif),
      [G],
      "the VM-facing interface carries the visible gateway",
    );
    t.same(
      await addressesOf(`${vm.vif}-nat`, `${vm.vif}-p`),
      ["10.137.0.21"],
      "the namespace's ProxyVM side carries N",
    );
    t.same(
      await addressesOf(topo.proxy, vm.vif),
      [GATEWAY],
      "the new vif in the ProxyVM carries the ProxyVM's gateway",
    );
    const link = (await ipJson(topo.proxy, ["link", "show", "dev", vm.vif])) as { address: string }[];
    t.equal(link[0]?.address, "fe:ff:ff:ff:ff:ff", "the ProxyVM-side vif keeps Xen's vif MAC");
  },
);

t.test(
  "two VMs sharing one visible address and gateway work at once and cannot reach each other",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const a = await addFakeVm(topo, "10.137.0.31", V, G);
    const b = await addFakeVm(topo, "10.137.0.32", V, G);
    const [seenA, seenB] = await Promise.all([askUpstream(a.ns), askUpstream(b.ns)]);
    t.equal(seenA, "10.137.0.31");
    t.equal(seenB, "10.137.0.32");
    t.notOk(await pings(a.ns, "10.137.0.32"), "VM a cannot reach VM b's native address");
    t.notOk(await pings(b.ns, "10.137.0.31"), "VM b cannot reach VM a's native address");
    t.ok(await pings(topo.proxy, "10.137.0.31"), "the ProxyVM reaches VM a");
    t.ok(await pings(topo.proxy, "10.137.0.32"), "the ProxyVM reaches VM b");
  },
);

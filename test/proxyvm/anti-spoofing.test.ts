/**
 * Anti-spoofing of the vifs' source addresses, with real packets.
 */

import { execa } from "execa";
import t from "tap";
import { netnsSkipReason } from "../helpers/netns.js";
import { addFakeVm, askUpstream, createTopology, UPSTREAM } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test("a VM sending from another address is dropped, with and without a fake IP", { skip }, async (t) => {
  const topo = await createTopology(t);
  const fake = await addFakeVm(topo, "10.137.0.41", V, G);
  const plain = await topo.addVm({ native: "10.137.0.42" });
  await topo.agent(["vif", "online", plain.vif, "--ip", "10.137.0.42"]);
  t.equal(
    await askUpstream(plain.ns),
    "10.137.0.42",
    "a VM without a fake IP is forwarded with its own address",
  );
  for (const vm of [fake, plain]) {
    await execa("ip", ["-n", vm.ns, "addr", "add", "10.137.0.99/32", "dev", "eth0"]);
    t.equal(
      await askUpstream(vm.ns, UPSTREAM, { localAddress: "10.137.0.99", timeoutMs: 1000 }),
      "",
      `${vm.vif}: spoofed source dropped`,
    );
  }
  // the plain VM claiming the fake VM's native address
  await execa("ip", ["-n", plain.ns, "addr", "add", "10.137.0.41/32", "dev", "eth0"]);
  t.equal(
    await askUpstream(plain.ns, UPSTREAM, { localAddress: "10.137.0.41", timeoutMs: 1000 }),
    "",
    "another VM's native address dropped",
  );
});

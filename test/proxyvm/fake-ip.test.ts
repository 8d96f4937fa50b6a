import t from "tap";
import { ipJson, netnsSkipReason } from "../helpers/netns.js";
import { askUpstream, createTopology, pings } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";

t.test(
  "a fake-IP VM sees only its visible address and gateway, upstream sees its native one",
  { skip: netnsSkipReason() },
  async (t) => {
    const topo = await createTopology(t);
    const vm = await topo.addVm({ native: "10.137.0.21", address: V, gatewayOfVm: G });
    await topo.write("/mapped-ip/10.137.0.21/visible-ip", V);
    await topo.write("/mapped-ip/10.137.0.21/visible-gateway", G);
    await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.21", "--mac", "00:16:3e:5e:6c:00"]);
    t.equal(await askUpstream(vm.ns), "10.137.0.21", "upstream sees the native address");
    t.ok(await pings(vm.ns, G), "the VM reaches its visible gateway");
    t.ok(await pings(topo.proxy, "10.137.0.21"), "the ProxyVM reaches the VM by its native address");
    const neigh = (await ipJson(vm.ns, ["neigh", "show", "dev", "eth0"])) as { dst: string }[];
    t.same(neigh.map((n) => n.dst).sort(), [G], "the VM's neighbours: only its visible gateway");
  },
);

/**
 * Anti-spoofing of the vifs' source addresses, with real packets.
 */

import { execa } from "execa";
import t from "tap";
import { inNetns, netnsSkipReason, spawnInNetns, waitFor } from "../helpers/netns.js";
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

t.test("traffic from the uplink claiming a connected VM's native address is dropped", { skip }, async (t) => {
  const topo = await createTopology(t);
  const N = "10.137.0.45";
  // a UDP listener in the ProxyVM that prints each sender's address
  const listener = spawnInNetns(t, topo.proxy, process.execPath, [
    "-e",
    `const s=require("node:dgram").createSocket("udp4");s.on("message",(m,r)=>process.stdout.write(r.address+"\\n"));s.bind(9999,"198.51.100.1",()=>process.stdout.write("ready\\n"));`,
  ]);
  let heard = "";
  listener.stdout?.on("data", (chunk: Buffer) => {
    heard += chunk.toString();
  });
  await waitFor(() => heard.includes("ready"));
  await execa("ip", ["-n", topo.upstream, "addr", "add", `${N}/32`, "dev", "lo"]);
  const send = (source = N) =>
    inNetns(topo.upstream, process.execPath, [
      "-e",
      `const s=require("node:dgram").createSocket("udp4");s.bind(0,"${source}",()=>s.send("x",9999,"198.51.100.1",()=>s.close()));`,
    ]);
  const vm = await topo.addVm({ native: "10.137.0.46" });
  await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.46"]);
  await send();
  t.ok(await waitFor(() => heard.includes(N), 2000), "control: not connected yet, the packet arrives");
  heard = "";
  await topo.write("/connected-ips", `${N} 10.137.0.46`);
  await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.46"]);
  await send();
  await new Promise((r) => setTimeout(r, 500));
  t.notMatch(heard, N, "a connected VM's native address from the uplink is dropped");
  t.equal(await askUpstream(vm.ns), "10.137.0.46", "the connected VM itself still works");

  // dom0 continues a list longer than one value in /connected-ips/1, /2, ...
  const N2 = "10.137.0.47";
  await execa("ip", ["-n", topo.upstream, "addr", "add", `${N2}/32`, "dev", "lo"]);
  heard = "";
  await send(N2);
  t.ok(await waitFor(() => heard.includes(N2), 2000), "control: not listed yet, the packet arrives");
  heard = "";
  await topo.write("/connected-ips/1", N2);
  await topo.agent(["vif", "online", vm.vif, "--ip", "10.137.0.46"]);
  await send(N2);
  await send(N);
  await new Promise((r) => setTimeout(r, 500));
  t.notMatch(heard, N2, "an address listed only in /connected-ips/1 is protected too");
  t.notMatch(heard, N, "the first part still applies");
});

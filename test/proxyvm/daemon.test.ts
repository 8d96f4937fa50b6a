/**
 * The agent as a daemon in the ProxyVM namespace: hook hand-over, status,
 * live changes from QubesDB, link events, SIGTERM and kill -9 + restart.
 */

import { existsSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { netnsSkipReason, removeNetns, waitFor } from "../helpers/netns.js";
import { addFakeVm, askUpstream, createTopology, linkIndex, agentStatus as status } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test("with a daemon, the hook hands the vif over and returns once it converged", { skip }, async (t) => {
  const topo = await createTopology(t);
  const daemon = await topo.startDaemon();
  const vm = await addFakeVm(topo, "10.137.0.21", V, G);
  t.equal(await askUpstream(vm.ns), "10.137.0.21", "forwarding as soon as the hook returned");
  const state = await status(topo);
  t.equal(state.running, true);
  t.same(state.vifs[vm.vif], {
    vif: vm.vif,
    native: "10.137.0.21",
    visible: V,
    namespace: `${vm.vif}-nat`,
    state: "forwarding",
  });
  const text = (await topo.agent(["status"])).stdout;
  t.match(
    text,
    new RegExp(
      `^${vm.vif.replace(".", "\\.")}\\s+10\\.137\\.0\\.21\\s+${V}\\s+${vm.vif}-nat\\s+forwarding\\s+-$`,
      "m",
    ),
  );
  const index = await linkIndex(topo.proxy, vm.vif);
  daemon.signal("SIGHUP");
  t.ok(await waitFor(() => daemon.log().includes("INFO resynced"), 5000), "SIGHUP: a full resync");
  t.equal(await linkIndex(topo.proxy, vm.vif), index, "which leaves a healthy VM's plumbing alone");
  t.equal(await askUpstream(vm.ns), "10.137.0.21");
  await daemon.stop("SIGTERM");
  t.equal(await askUpstream(vm.ns), "10.137.0.21", "SIGTERM leaves the data plane in place");
});

t.test("a vif that disappears is cleaned up without offline", { skip }, async (t) => {
  const topo = await createTopology(t);
  await topo.startDaemon();
  const plain = await topo.addVm({ native: "10.137.0.51" });
  await topo.agent(["vif", "online", plain.vif, "--ip", "10.137.0.51"]);
  t.ok(existsSync(`${topo.stateDir}/vifs/${plain.vif}.json`));
  await removeNetns(plain.ns); // the VM's end goes, and its vif with it
  t.ok(
    await waitFor(() => !existsSync(`${topo.stateDir}/vifs/${plain.vif}.json`), 5000),
    "its facts are dropped",
  );
  t.same((await status(topo)).vifs[plain.vif], undefined);
  const set = await execa("nsenter", [
    `--net=/run/netns/${topo.proxy}`,
    "nft",
    "list",
    "set",
    "inet",
    "qubes-fakeip-antispoof",
    "allowed4",
  ]);
  t.notMatch(String(set.stdout), "10.137.0.51", "its allow-list entry is gone");
});

/**
 * The agent as a daemon in the ProxyVM namespace: hook hand-over, status,
 * live changes from QubesDB, link events, SIGTERM and kill -9 + restart.
 */

import { existsSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { netnsSkipReason, removeNetns, waitFor } from "../helpers/netns.js";
import { addFakeVm, askUpstream, createTopology, linkIndex, agentStatus as status } from "./topology.js";

/** The kernel's handle of the NAT table in `ns`: a replaced table gets a new one. */
async function natTableHandle(ns: string): Promise<number | undefined> {
  const out = await execa("ip", [
    "netns",
    "exec",
    ns,
    "nft",
    "-j",
    "list",
    "table",
    "netdev",
    "qubes-fakeip-nat",
  ]);
  const items = (JSON.parse(out.stdout) as { nftables: { table?: { handle: number } }[] }).nftables;
  return items.find((item) => item.table !== undefined)?.table?.handle;
}

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
  const table = await natTableHandle(`${vm.vif}-nat`);
  daemon.signal("SIGHUP");
  t.ok(await waitFor(() => daemon.log().includes("INFO resynced"), 5000), "SIGHUP: a full resync");
  t.equal(await linkIndex(topo.proxy, vm.vif), index, "which leaves a healthy VM's plumbing alone");
  t.equal(await natTableHandle(`${vm.vif}-nat`), table, "and its NAT table (same mark: not replaced)");
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

t.test(
  "a fake-IP VM's vif that disappears inside its NAT namespace is cleaned up without offline",
  { skip },
  async (t) => {
    // Xen's vif of a fake-IP VM lives in the NAT namespace, out of reach of the
    // agent's own link events; the agent watches each such namespace.
    const topo = await createTopology(t);
    await topo.startDaemon();
    const vm = await addFakeVm(topo, "10.137.0.52", V, G);
    const other = await addFakeVm(topo, "10.137.0.53", V, G);
    t.ok(existsSync(`/run/netns/${vm.vif}-nat`));
    await removeNetns(vm.ns); // the VM's end goes, and Xen's vif in the NAT namespace with it
    t.ok(await waitFor(() => !existsSync(`/run/netns/${vm.vif}-nat`), 5000), "its NAT namespace is removed");
    t.ok(
      await waitFor(() => !existsSync(`${topo.stateDir}/vifs/${vm.vif}.json`), 5000),
      "its facts are dropped",
    );
    t.same((await status(topo)).vifs[vm.vif], undefined, "status no longer lists it");
    t.ok(
      await waitFor(
        async () => (await linkIndex(topo.proxy, vm.vif).catch(() => undefined)) === undefined,
        5000,
      ),
      "the ProxyVM end of its veth pair is gone",
    );
    t.equal(await askUpstream(other.ns), "10.137.0.53", "the VM beside it keeps working");
    t.equal((await status(topo)).vifs[other.vif]?.state, "forwarding");
  },
);

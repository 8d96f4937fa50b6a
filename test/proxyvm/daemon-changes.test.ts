/**
 * The agent as a daemon: live changes from QubesDB, invalid values, kill -9 and restart.
 */

import { existsSync, rmSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { netnsSkipReason, removeNetns, waitFor } from "../helpers/netns.js";
import {
  addFakeVm,
  askUpstream,
  createTopology,
  GATEWAY,
  linkIndex,
  agentStatus as status,
  UPSTREAM,
} from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test("a live change of visible-ip re-plumbs only that VM", { skip }, async (t) => {
  const topo = await createTopology(t);
  await topo.startDaemon();
  const a = await addFakeVm(topo, "10.137.0.31", V, G);
  const b = await addFakeVm(topo, "10.137.0.32", V, G);
  const before = await linkIndex(topo.proxy, b.vif);
  const V2 = "10.201.0.20";
  await execa("ip", ["-n", a.ns, "addr", "replace", `${V2}/32`, "dev", "eth0"]);
  await execa("ip", ["-n", a.ns, "addr", "del", `${V}/32`, "dev", "eth0"]);
  await execa("ip", ["-n", a.ns, "route", "replace", "default", "via", G, "src", V2]);
  await topo.write("/mapped-ip/10.137.0.31/visible-ip", V2);
  t.equal(
    await waitFor(() => askUpstream(a.ns, UPSTREAM, { timeoutMs: 500 }), 5000),
    "10.137.0.31",
    "VM a works with its new visible address",
  );
  t.equal((await status(topo)).vifs[a.vif]?.["visible"], V2);
  t.equal(await linkIndex(topo.proxy, b.vif), before, "VM b's plumbing was not touched");
  t.equal(await askUpstream(b.ns), "10.137.0.32", "VM b still works");
  await topo.write("/mapped-ip/10.137.0.31/visible-ip", "10.137.0.31");
  await waitFor(() => !existsSync(`/run/netns/${a.vif}-nat`), 5000);
  t.notOk(
    existsSync(`/run/netns/${a.vif}-nat`),
    "visible-ip equal to the native one: the NAT namespace goes away",
  );
  // dom0 gives the VM its native address and the ProxyVM's gateway again
  await execa("ip", ["-n", a.ns, "addr", "replace", "10.137.0.31/32", "dev", "eth0"]);
  await execa("ip", ["-n", a.ns, "route", "replace", GATEWAY, "dev", "eth0"]);
  await execa("ip", ["-n", a.ns, "route", "replace", "default", "via", GATEWAY, "src", "10.137.0.31"]);
  t.equal(
    await waitFor(() => askUpstream(a.ns, UPSTREAM, { timeoutMs: 500 }), 5000),
    "10.137.0.31",
    "and Xen's vif is back in the ProxyVM, forwarding",
  );
});

t.test(
  "an agent killed with SIGKILL leaves forwarding intact and a restart converges",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const first = await topo.startDaemon();
    const a = await addFakeVm(topo, "10.137.0.41", V, G);
    const plain = await topo.addVm({ native: "10.137.0.42" });
    await topo.agent(["vif", "online", plain.vif, "--ip", "10.137.0.42"]);
    const index = await linkIndex(topo.proxy, a.vif);
    await first.stop("SIGKILL");
    t.equal(await askUpstream(a.ns), "10.137.0.41", "forwarding while the agent is dead");
    // a vif arriving while no daemon runs: the hook does the NAT work itself (its
    // firewall rules wait for the daemon, so it forwards only after the restart)
    const late = await addFakeVm(topo, "10.137.0.43", V, G);
    t.ok(existsSync(`/run/netns/${late.vif}-nat`), "the hook plumbed it without a daemon");
    const second = await topo.startDaemon();
    t.equal(await linkIndex(topo.proxy, a.vif), index, "a healthy VM is adopted, not re-plumbed");
    const vifs = (await status(topo)).vifs;
    t.same(
      [a.vif, plain.vif, late.vif].map((vif) => vifs[vif]?.["state"]),
      ["forwarding", "forwarding", "forwarding"],
    );
    t.equal(await askUpstream(a.ns), "10.137.0.41");
    t.equal(await askUpstream(plain.ns), "10.137.0.42");
    t.equal(await askUpstream(late.ns), "10.137.0.43", "the late VM forwards once the daemon is back");
    t.notMatch(second.log(), /WARN|ERROR/, "a clean start");
  },
);

t.test("an invalid visible IP in QubesDB blocks only that VM and shows why", { skip }, async (t) => {
  const topo = await createTopology(t);
  await topo.startDaemon();
  const a = await addFakeVm(topo, "10.137.0.61", V, G);
  const b = await addFakeVm(topo, "10.137.0.62", V, G);
  await topo.write("/mapped-ip/10.137.0.61/visible-ip", "10.200.0.300");
  const blocked = await waitFor(async () => (await status(topo)).vifs[a.vif]?.["state"] === "blocked", 5000);
  t.ok(blocked);
  t.equal(
    (await status(topo)).vifs[a.vif]?.["lastError"],
    'Cannot use /mapped-ip/10.137.0.61/visible-ip "10.200.0.300": not an IPv4 address',
  );
  t.equal(await askUpstream(a.ns, UPSTREAM, { timeoutMs: 600 }), "", "the blocked VM forwards nothing");
  t.equal(await askUpstream(b.ns), "10.137.0.62", "the other VM is unaffected");
});

t.test(
  "a NAT namespace whose record and veth pair are lost is removed at start only when it carries this agent's mark",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const first = await topo.startDaemon();
    const vm = await addFakeVm(topo, "10.137.0.44", V, G);
    const lo = (await execa("ip", ["-n", `${vm.vif}-nat`, "-j", "link", "show", "dev", "lo"])).stdout;
    t.match(
      JSON.parse(lo)[0]?.ifalias,
      /^qubes-fakeip-nat owner=\d+$/,
      "the namespace carries its owner's mark",
    );
    await first.stop("SIGTERM");
    // the state is lost: no record, no veth pair (so no owned link in the ProxyVM either)
    rmSync(`${topo.stateDir}/vifs/${vm.vif}.json`);
    await execa("ip", ["-n", topo.proxy, "link", "del", "dev", vm.vif]);
    // a namespace of the same shape made by someone else (another ProxyVM namespace on this host)
    const foreign = `vif${20000 + Math.floor(Math.random() * 10000)}.0-nat`;
    await execa("ip", ["netns", "add", foreign]);
    t.teardown(() => removeNetns(foreign));
    const second = await topo.startDaemon();
    t.ok(await waitFor(() => !existsSync(`/run/netns/${vm.vif}-nat`), 5000), "ours is removed");
    t.ok(existsSync(`/run/netns/${foreign}`), "the unmarked one is left alone");
    t.notMatch(second.log(), /WARN|ERROR/, "a clean start");
  },
);

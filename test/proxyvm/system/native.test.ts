/**
 * The native helper and the in-process namespace tools built on it, against
 * the kernel: namespaces made and removed without `ip`, sysctls written inside
 * before anything enters, nft transactions through libnftables in the right
 * namespace (all or nothing), sockets opened inside a namespace, and the watch
 * for a link leaving one.
 */
import { existsSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { nativeNetns } from "../../../proxyvm/system/native.js";
import { openNetlink, watchLinkRemoval } from "../../../proxyvm/system/netlink.js";
import { closeNetnsFd, createNetns, deleteNetns, openNetnsFd } from "../../../proxyvm/system/netns.js";
import { netnsSkipReason, removeNetns, uniqueName, waitFor } from "../../helpers/netns.js";

const skip = netnsSkipReason();

/** A unique namespace name, removed by name in teardown whatever the test did. */
function name(t: { teardown(fn: () => unknown): void }, prefix = "nt"): string {
  const ns = uniqueName(prefix);
  t.teardown(() => removeNetns(ns));
  return ns;
}

async function nftTables(ns: string): Promise<string[]> {
  const out = await execa("ip", ["netns", "exec", ns, "nft", "-j", "list", "tables"]);
  const parsed = JSON.parse(out.stdout) as { nftables: { table?: { name: string } }[] };
  return parsed.nftables.flatMap((entry) => (entry.table === undefined ? [] : [entry.table.name]));
}

t.test("a namespace is created and deleted without a process, visible to ip netns", { skip }, async (t) => {
  const ns = name(t);
  await createNetns(ns, [["net/ipv6/conf/default/addr_gen_mode", "1"]]);
  t.ok(existsSync(`/run/netns/${ns}`));
  t.match((await execa("ip", ["netns", "list"])).stdout, ns);
  const sysctl = await execa("ip", [
    "netns",
    "exec",
    ns,
    "sysctl",
    "-n",
    "net.ipv6.conf.default.addr_gen_mode",
  ]);
  t.equal(sysctl.stdout.trim(), "1", "the sysctl was written inside the new namespace");
  const host = await execa("sysctl", ["-n", "net.ipv6.conf.default.addr_gen_mode"]);
  t.not(host.stdout.trim(), "", "and the host's own value is still readable (untouched by the test)");
  deleteNetns(ns);
  t.notOk(existsSync(`/run/netns/${ns}`));
  t.doesNotThrow(() => deleteNetns(ns), "deleting again is not an error");
});

t.test("bad names and bad sysctls are refused, naming the value, and leave nothing", { skip }, async (t) => {
  const ns = name(t);
  await createNetns(ns);
  await t.rejects(createNetns(ns), { message: new RegExp(`"/run/netns/${ns}": File exists`) });
  t.ok(existsSync(`/run/netns/${ns}`), "the existing one is untouched");
  await t.rejects(createNetns("../etc"), { message: 'Invalid network namespace name "../etc"' });
  t.throws(() => deleteNetns("a/b"), { message: 'Invalid network namespace name "a/b"' });
  const other = name(t);
  await t.rejects(createNetns(other, [["/etc/passwd", "x"]]), /relative to \/proc\/sys/);
  await t.rejects(createNetns(other, [["net/ipv6/conf/default/addr_gen_mode", "9"]]), {
    message: /Cannot set sysctl "net\/ipv6\/conf\/default\/addr_gen_mode" to "9"/,
  });
  t.notOk(existsSync(`/run/netns/${other}`), "a failed creation leaves no name behind");
  t.throws(() => nativeNetns().setns(987_654), /Cannot join the network namespace of "fd 987654"/);
});

t.test("nft transactions run in the namespace given, all or nothing", { skip }, async (t) => {
  const ns = name(t);
  await createNetns(ns);
  const fd = openNetnsFd(ns);
  t.teardown(() => closeNetnsFd(fd));
  const native = nativeNetns();
  await native.nftRun("table inet qfi_native_test { chain c { type filter hook input priority 0; }; }\n", fd);
  t.same(await nftTables(ns), ["qfi_native_test"]);
  const host = await execa("nft", ["-j", "list", "tables"]);
  t.notMatch(host.stdout, "qfi_native_test", "nothing in the agent's own namespace");
  await t.rejects(
    native.nftRun("table inet qfi_second\nadd rule inet qfi_second nosuchchain accept\n", fd),
    /No such file or directory|nosuchchain/,
    "nft's own message",
  );
  t.same(await nftTables(ns), ["qfi_native_test"], "the failed transaction added nothing");
});

t.test(
  "netlink sockets opened inside a namespace act there; veth pairs cross namespaces",
  { skip },
  async (t) => {
    const a = name(t);
    const b = name(t);
    await createNetns(a);
    await createNetns(b);
    const fdA = openNetnsFd(a);
    const fdB = openNetnsFd(b);
    const inA = openNetlink({ netnsFd: fdA });
    t.teardown(() => {
      inA.close();
      closeNetnsFd(fdA);
      closeNetnsFd(fdB);
    });
    await inA.createVeth({
      name: "qa0",
      mac: "fe:ff:ff:ff:ff:ff",
      peer: "qb0",
      peerMac: "00:16:3e:00:00:07",
      peerNetnsFd: fdB,
    });
    const linksA = (await inA.listLinks()).map((link) => link.name).sort();
    t.same(linksA, ["lo", "qa0"], "the socket sees namespace a, not the agent's own");
    const shownB = JSON.parse((await execa("ip", ["-n", b, "-j", "link", "show", "dev", "qb0"])).stdout)[0];
    t.equal(shownB.address, "00:16:3e:00:00:07", "the peer is in b with its MAC");
    await inA.setAliasByName("qa0", "qubes-fakeip-test");
    await inA.moveLinkByName("qa0", fdB);
    t.same(
      (await inA.listLinks()).map((link) => link.name),
      ["lo"],
      "moved out of a by name",
    );
    const shownA = JSON.parse((await execa("ip", ["-n", b, "-j", "link", "show", "dev", "qa0"])).stdout)[0];
    t.equal(shownA.ifalias, "qubes-fakeip-test", "into b, alias kept");
  },
);

t.test("a watch reports a link leaving its namespace, and one already gone", { skip }, async (t) => {
  const ns = name(t);
  await createNetns(ns);
  await execa("ip", ["-n", ns, "link", "add", "qw0", "type", "veth", "peer", "name", "qw0p"]);
  const fd = openNetnsFd(ns);
  let gone = 0;
  const watch = watchLinkRemoval(fd, "qw0", () => gone++);
  let missing = 0;
  const early = watchLinkRemoval(fd, "qw1", () => missing++);
  closeNetnsFd(fd);
  t.teardown(() => {
    watch.close();
    early.close();
  });
  t.ok(await waitFor(() => missing === 1, 2000), "a link that is not there is reported at once");
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(gone, 0, "nothing while the link is there");
  await execa("ip", ["-n", ns, "link", "add", "qw2", "type", "veth", "peer", "name", "qw2p"]);
  await execa("ip", ["-n", ns, "link", "del", "qw2"]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(gone, 0, "another link's removal is not it");
  await execa("ip", ["-n", ns, "link", "del", "qw0"]);
  t.ok(await waitFor(() => gone === 1, 2000), "its removal is reported");
  watch.close();
  early.close();
  deleteNetns(ns);
  t.ok(
    await waitFor(async () => (await execa("ip", ["netns", "list"])).stdout.includes(ns) === false, 2000),
    "once the watches are closed the namespace can go",
  );
});

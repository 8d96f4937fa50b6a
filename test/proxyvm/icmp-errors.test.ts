/**
 * No leak of the native address in ICMP errors: proven with a capture in the VM's namespace.
 */

import { readFileSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import { inNetns, netnsSkipReason } from "../helpers/netns.js";
import { addFakeVm, askUpstream, createTopology, UPSTREAM, UPSTREAM6, VM_MAC } from "./topology.js";

const V = "10.200.0.10";
const G = "10.200.0.1";
const skip = netnsSkipReason();

t.test(
  "an ICMP error going back to a fake-IP VM arrives with its visible address inside and valid checksums",
  { skip },
  async (t) => {
    const topo = await createTopology(t);
    const fake = await addFakeVm(topo, "10.137.0.51", V, G);
    const plain = await topo.addVm({ native: "10.137.0.52" });
    await topo.agent(["vif", "online", plain.vif, "--ip", "10.137.0.52"]);
    const capture = async (ns: string) => {
      const file = `${topo.stateDir}/${ns}.pcap`;
      const dump = execa(
        "nsenter",
        [`--net=/run/netns/${ns}`, "tcpdump", "-i", "eth0", "-U", "-n", "-w", file],
        { reject: false },
      );
      await new Promise((r) => setTimeout(r, 400));
      // UDP to a closed port (upstream answers port unreachable), TCP to a closed port, a TTL-expiring ping
      const udp = `const s=require("node:dgram").createSocket("udp4");s.send("x",9,${JSON.stringify(UPSTREAM)},()=>setTimeout(()=>process.exit(0),300));`;
      await inNetns(ns, process.execPath, ["-e", udp]);
      await inNetns(ns, "ping", ["-c", "3", "-i", "0.3", "-W", "1", "-t", "1", UPSTREAM], { reject: false });
      await askUpstream(ns);
      await new Promise((r) => setTimeout(r, 300));
      dump.kill("SIGINT");
      await dump;
      const verbose = await execa("tcpdump", ["-r", file, "-n", "-vv", "icmp"]);
      const errors = await execa("tcpdump", [
        "-r",
        file,
        "-n",
        "icmp[icmptype] != icmp-echoreply and icmp[icmptype] != icmp-echo",
      ]);
      return {
        bytes: readFileSync(file),
        icmpErrors: String(errors.stdout),
        verbose: String(verbose.stdout),
      };
    };
    const contains = (bytes: Buffer, ip: string) => bytes.includes(Buffer.from(ip.split(".").map(Number)));
    const control = await capture(plain.ns);
    t.match(
      control.icmpErrors,
      "port 9 unreachable",
      "control: a VM without a fake IP gets the port-unreachable error",
    );
    t.match(
      control.icmpErrors,
      "time exceeded",
      `control: and the time-exceeded error (${control.icmpErrors})`,
    );
    const faked = await capture(fake.ns);
    t.ok(contains(faked.bytes, V), "the fake VM's capture holds its visible address");
    t.notOk(
      contains(faked.bytes, "10.137.0.51"),
      "no byte sequence of the native address reaches the fake VM",
    );
    t.match(faked.icmpErrors, "port 9 unreachable", "the port-unreachable error arrives");
    t.match(faked.icmpErrors, "time exceeded", "the time-exceeded error arrives");
    t.match(faked.verbose, `${V}.`, "the embedded header names the visible address");
    t.notMatch(
      faked.verbose,
      /wrong icmp cksum|bad cksum|bad udp cksum/,
      "no stale checksum: the ICMP and inner IP ones are valid, the quoted UDP one is 0",
    );
  },
);

t.test("path MTU discovery works for a fake-IP VM over IPv4 and IPv6", { skip }, async (t) => {
  const topo = await createTopology(t);
  const V6 = "fd00:a::10";
  const G6 = "fd00:a::1";
  const vm = await topo.addVm({
    native: "10.137.0.61",
    address: V,
    gatewayOfVm: G,
    address6: V6,
    gateway6OfVm: G6,
  });
  await topo.write("/mapped-ip/10.137.0.61/visible-ip", V);
  await topo.write("/mapped-ip/10.137.0.61/visible-gateway", G);
  await topo.write("/mapped-ip/10.137.0.61/visible-ip6", V6);
  await topo.write("/mapped-ip/10.137.0.61/visible-gateway6", G6);
  await topo.agent([
    "vif",
    "online",
    vm.vif,
    "--ip",
    "10.137.0.61",
    "--ip",
    "fd09:24ef:4179::a89:61",
    "--mac",
    VM_MAC,
  ]);
  // a smaller uplink: the ProxyVM answers big packets with fragmentation-needed / packet-too-big
  await execa("ip", ["-n", topo.proxy, "link", "set", "uplink", "mtu", "1280"]);
  await inNetns(vm.ns, "ping", ["-c", "1", "-W", "1", "-M", "do", "-s", "1400", UPSTREAM], { reject: false });
  await inNetns(vm.ns, "ping", ["-6", "-c", "1", "-W", "1", "-s", "1400", UPSTREAM6], { reject: false });
  const route4 = String((await execa("ip", ["-n", vm.ns, "route", "get", UPSTREAM])).stdout);
  const route6 = String((await execa("ip", ["-n", vm.ns, "-6", "route", "get", UPSTREAM6])).stdout);
  t.match(route4, /mtu 1280/, "the VM accepted fragmentation-needed (it names its own visible address)");
  t.match(route6, /mtu 1280/, "the VM accepted packet-too-big");
});

import t from "tap";
import {
  createNetns,
  createVethPair,
  inNetns,
  ipJson,
  netnsSkipReason,
  uniqueName,
} from "./helpers/netns.js";

t.test(
  "two namespaces joined by a veth pair exchange pings and are removed afterwards",
  { skip: netnsSkipReason() },
  async (t) => {
    const a = uniqueName("qfha");
    const b = uniqueName("qfhb");
    await t.test("inner", async (t) => {
      await createNetns(t, a);
      await createNetns(t, b);
      await createVethPair({ ns: a, name: "va" }, { ns: b, name: "vb" });
      await inNetns(a, "ip", ["addr", "add", "192.0.2.1/24", "dev", "va"]);
      await inNetns(b, "ip", ["addr", "add", "192.0.2.2/24", "dev", "vb"]);
      const result = await inNetns(a, "ping", ["-c", "1", "-W", "2", "192.0.2.2"], { reject: false });
      t.equal(result.exitCode, 0, "ping crosses the veth pair");
      const links = (await ipJson(a, ["link", "show", "va"])) as Array<{ ifname: string }>;
      t.equal(links[0]?.ifname, "va");
    });
    const { stdout } = await import("execa").then(({ execa }) => execa("ip", ["netns", "list"]));
    t.notMatch(stdout, a, "namespace a is gone after teardown");
    t.notMatch(stdout, b, "namespace b is gone after teardown");
  },
);

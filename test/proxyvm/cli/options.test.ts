import t from "tap";
import { normaliseGlobalOptions, parseVifArguments } from "../../../proxyvm/cli/options.js";

t.test(
  "global options are normalised once, with per-agent state beside a given control socket",
  async (t) => {
    const cases: [string, Record<string, unknown>, object][] = [
      [
        "defaults",
        {},
        {
          qubesdbSocket: undefined,
          controlSocket: "/run/qubes-fakeip/agent.sock",
          stateDir: "/run/qubes-fakeip",
          dryRun: false,
          dnsServers: [],
        },
      ],
      [
        "own control socket",
        { controlSocket: "/tmp/a.sock" },
        {
          qubesdbSocket: undefined,
          controlSocket: "/tmp/a.sock",
          stateDir: "/tmp/a.sock.state",
          dryRun: false,
          dnsServers: [],
        },
      ],
      [
        "everything given",
        {
          qubesdbSocket: "/q.sock",
          controlSocket: "/c.sock",
          stateDir: "/s",
          dryRun: true,
          dnsServer: ["198.51.100.53", "2001:db8::53"],
        },
        {
          qubesdbSocket: "/q.sock",
          controlSocket: "/c.sock",
          stateDir: "/s",
          dryRun: true,
          dnsServers: ["198.51.100.53", "2001:db8::53"],
        },
      ],
    ];
    for (const [name, raw, expected] of cases) t.same(normaliseGlobalOptions(raw), expected, name);
    t.throws(() => normaliseGlobalOptions({ dnsServer: ["dns.example"] }), {
      message: 'Cannot use DNS server "dns.example": not an IPv4 or IPv6 address',
    });
  },
);

t.test("the hook takes the first IPv4 and the first IPv6 address", async (t) => {
  t.same(parseVifArguments("vif3.0", ["fd09::5", "10.137.0.5", "10.137.0.6"], undefined), {
    vif: "vif3.0",
    ip: "10.137.0.5",
    ip6: "fd09::5",
    mac: undefined,
  });
  t.throws(() => parseVifArguments("eth0", ["10.137.0.5"], undefined), {
    message: 'Cannot handle vif "eth0": not a vif name vifDOMID.IDX',
  });
  t.throws(() => parseVifArguments("vif3.0", [], undefined), {
    message: 'Cannot handle vif "vif3.0": --ip is required',
  });
});

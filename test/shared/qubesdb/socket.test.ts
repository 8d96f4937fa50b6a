import t from "tap";
import { resolveSocketPath } from "../../../shared/qubesdb/socket.js";

t.test("socket selection follows the contract, first match wins", async (t) => {
  const cases: Array<
    [string, { socket?: string; domain?: string }, Record<string, string>, string, string | undefined]
  > = [
    [
      "--socket wins",
      { socket: "/s/x.sock", domain: "vm" },
      { QUBESDB_SOCKET: "/e.sock" },
      "/s/x.sock",
      "/s/x.ro.sock",
    ],
    [
      "-d NAME",
      { domain: "vm" },
      { QUBESDB_SOCKET: "/e.sock" },
      "/var/run/qubes/qubesdb.vm.sock",
      "/var/run/qubes/qubesdb.vm.ro.sock",
    ],
    [
      "-d NAME in QUBESDB_RUN_DIR",
      { domain: "vm" },
      { QUBESDB_RUN_DIR: "/r" },
      "/r/qubesdb.vm.sock",
      "/r/qubesdb.vm.ro.sock",
    ],
    ["QUBESDB_SOCKET", {}, { QUBESDB_SOCKET: "/e.sock", QUBESDB_RUN_DIR: "/r" }, "/e.sock", "/e.ro.sock"],
    ["QUBESDB_RUN_DIR", {}, { QUBESDB_RUN_DIR: "/r" }, "/r/qubesdb.sock", "/r/qubesdb.ro.sock"],
    ["default", {}, {}, "/var/run/qubes/qubesdb.sock", "/var/run/qubes/qubesdb.ro.sock"],
    ["an RO socket has no fallback", { socket: "/s/x.ro.sock" }, {}, "/s/x.ro.sock", undefined],
    ["a path not ending in .sock has no fallback", { socket: "/s/sock" }, {}, "/s/sock", undefined],
  ];
  for (const [name, selection, env, path, fallback] of cases) {
    t.same(resolveSocketPath(selection, env), { path, fallback }, name);
  }
});

t.test("a domain that is not a VM name is refused", async (t) => {
  t.throws(() => resolveSocketPath({ domain: "../etc" }, {}), {
    name: "QubesDbInvalidInputError",
    message: 'Cannot use domain "../etc": not a valid VM name (letters, digits, "_", ".", "-")',
  });
});

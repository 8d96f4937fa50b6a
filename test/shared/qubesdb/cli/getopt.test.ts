import t from "tap";
import { getopt } from "../../../../shared/qubesdb/cli/getopt.js";

const SPEC = {
  short: "hxc:d:n:e:frqw",
  long: { default: { key: "e", argument: true }, socket: { key: "socket", argument: true } },
};

t.test("getopt reproduces GNU getopt_long parsing", async (t) => {
  const cases: Array<[string, string[], Array<[string, string | undefined]>, string[]]> = [
    ["flags and operands", ["-f", "/a"], [["f", undefined]], ["/a"]],
    [
      "clustered flags",
      ["-frq", "/a"],
      [
        ["f", undefined],
        ["r", undefined],
        ["q", undefined],
      ],
      ["/a"],
    ],
    ["attached argument", ["-n5", "/a"], [["n", "5"]], ["/a"]],
    [
      "cluster ending in an option with argument",
      ["-fn", "-1", "/a"],
      [
        ["f", undefined],
        ["n", "-1"],
      ],
      ["/a"],
    ],
    ["permutation", ["/a", "-f", "/b"], [["f", undefined]], ["/a", "/b"]],
    ["-- ends options", ["-f", "--", "-x", "/a"], [["f", undefined]], ["-x", "/a"]],
    ["a lone - is an operand", ["-"], [], ["-"]],
    ["--default=VAL", ["--default=v", "/a"], [["e", "v"]], ["/a"]],
    ["--default VAL", ["--default", "v w", "/a"], [["e", "v w"]], ["/a"]],
    ["abbreviated long option", ["--so", "/s", "/a"], [["socket", "/s"]], ["/a"]],
  ];
  for (const [name, args, options, operands] of cases) {
    const result = getopt(args, SPEC);
    t.same(
      result.ok ? [result.options.map((o) => [o.key, o.value]), result.operands] : result,
      [options, operands],
      name,
    );
  }
});

t.test("getopt errors read like GNU getopt's", async (t) => {
  const cases: Array<[string[], string]> = [
    [["-z"], "invalid option -- 'z'"],
    [["-n"], "option requires an argument -- 'n'"],
    [["--bogus"], "unrecognized option '--bogus'"],
    [["--default"], "option '--default' requires an argument"],
  ];
  for (const [args, error] of cases) t.same(getopt(args, SPEC), { ok: false, error }, args.join(" "));
});

import t from "tap";
import { formatProgress } from "../../../dom0/backup/progress.js";

t.test("the progress line shows entry, phase, bar, MiB done of total and rate", async (t) => {
  const MIB = 2 ** 20;
  const table: Array<[number, number, number, string]> = [
    [0, 100 * MIB, 0, "vm/private.img scan [          ] 0.0/100.0 MiB 0 MiB/s"],
    [50 * MIB, 100 * MIB, 500, "vm/private.img scan [#####     ] 50.0/100.0 MiB 100 MiB/s"],
    [0, 0, 10, "vm/private.img scan [##########] 0.0/0.0 MiB 0 MiB/s"],
  ];
  for (const [done, total, ms, expected] of table) {
    t.equal(formatProgress({ entry: "vm/private.img", phase: "scan", done, total }, ms, 10), expected);
  }
});

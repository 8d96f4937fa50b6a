import t from "tap";
import { effectTime } from "../../scripts/lab/probes/measure.js";

const sample = (startedAt: number, ok: boolean) => ({ ok, startedAt });

t.test(
  "the effect time runs from the command returning to the first sample after which the change holds",
  async (t) => {
    const blocked = (r: { ok: boolean }) => !r.ok;
    const cases: Array<[string, Array<{ ok: boolean; startedAt: number }>, number | undefined]> = [
      [
        "holds from the third sample",
        [sample(1000, true), sample(1025, true), sample(1050, false), sample(1075, false)],
        50,
      ],
      [
        "flaps back once: counted from when it last started holding",
        [sample(1000, false), sample(1025, true), sample(1050, false)],
        50,
      ],
      ["already in effect when the command returned", [sample(1000, false), sample(1025, false)], 0],
      ["never holds at the end", [sample(1000, false), sample(1025, true)], undefined],
      ["no samples", [], undefined],
    ];
    for (const [name, samples, want] of cases) t.equal(effectTime(samples, 1000, blocked), want, name);
  },
);

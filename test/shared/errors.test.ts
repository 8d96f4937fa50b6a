import t from "tap";
import { describeError, InvalidInputError } from "../../shared/errors.js";

t.test("describeError chains causes with colons", async (t) => {
  const inner = new Error("no such file");
  const outer = new InvalidInputError('Cannot read "x"', { cause: inner });
  t.equal(describeError(outer), 'Cannot read "x": no such file');
  t.equal(describeError("plain"), "plain");
});

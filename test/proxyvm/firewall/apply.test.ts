/**
 * The applier's nft session in a real namespace: one script is one
 * transaction (a failing line leaves nothing behind), nft's own error comes
 * back, and the session goes on after an error.
 */
import t from "tap";
import { createNftApplier } from "../../../proxyvm/firewall/apply.js";
import { listNftJson } from "../../../proxyvm/system/nft.js";
import { createNetns, netnsSkipReason, uniqueName } from "../../helpers/netns.js";

const chains = async (ns: string) =>
  (await listNftJson(["list", "chains"], { netns: ns })).flatMap((e) => {
    const chain = (e as { chain?: { name: string } }).chain;
    return chain === undefined ? [] : [chain.name];
  });

t.test("the nft session applies each script as one transaction", { skip: netnsSkipReason() }, async (t) => {
  const ns = await createNetns(t, uniqueName("fwa"));
  const applier = createNftApplier({ netns: ns });
  t.teardown(() => applier.close?.());

  await applier.apply("table ip fwa {\n\tchain one {\n\t\taccept\n\t}\n}\n");
  t.same(await chains(ns), ["one"]);

  await t.rejects(
    applier.apply("add chain ip fwa two\nadd rule ip fwa absent accept\n"),
    /^Cannot apply nft script: Error: Could not process rule: No such file or directory/,
  );
  t.same(await chains(ns), ["one"], "the failing script left nothing behind");

  await applier.apply("add chain ip fwa three\n");
  t.same(await chains(ns), ["one", "three"], "the session goes on after an error");

  applier.close?.();
  await applier.apply("add chain ip fwa four\n");
  t.same(await chains(ns), ["one", "three", "four"], "a closed session is reopened on the next script");
});

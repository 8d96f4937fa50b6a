/**
 * The NAT applier: converges one vif from its desired state (desired.ts) and
 * what the kernel holds, through a `NatSystem`. Ordering keeps every moment
 * fail-closed:
 *   1. allow-list entries that no longer apply are removed first;
 *   2. structure (namespace, moves, veth pair) and, side by side with it, the
 *      allow-list entry (see below why that is still fail-closed);
 *   3. the namespace's inside, its NAT table and the ProxyVM side (addresses,
 *      route, neighbour), side by side; a failure of any step removes the
 *      allow-list entry again, so a half-built vif never forwards.
 */
import { SystemError } from "../../shared/errors.js";
import type { DesiredVif, FakeVif, PlainVif } from "../desired.js";
import type { LinkInfo } from "../system/netlink.js";
import type { AllowList } from "./allow-list.js";
import type { AllowedPair } from "./antispoof.js";
import { natNetnsName, OWNED_ALIAS } from "./names.js";
import { type ObservedStructure, type ProxyOp, planStructure, planTeardown, planVif } from "./plan.js";
import { firstFailure, type NatSystem } from "./system.js";

export interface Addresses {
  readonly ip: string;
  readonly ip6?: string | undefined;
}

export type ApplyOutcome =
  /** `shape`: what the kernel now holds for the vif (known from the steps that succeeded, not looked at) */
  | { readonly result: "applied"; readonly applied: Addresses; readonly shape: ObservedStructure }
  | { readonly result: "removed" }
  | { readonly result: "blocked" }
  /** Xen's vif exists nowhere any more: everything was removed */
  | { readonly result: "gone" };

export async function observeStructure(sys: NatSystem, vif: string): Promise<ObservedStructure> {
  const link = await sys.getLink(vif);
  return {
    netnsExists: sys.netnsExists(natNetnsName(vif)),
    proxyLink: link === undefined ? "none" : link.alias === OWNED_ALIAS ? "ours" : "xen",
  };
}

function pairs(vif: string, addresses: Addresses | undefined): AllowedPair[] {
  if (addresses === undefined) return [];
  const list: AllowedPair[] = [{ iif: vif, address: addresses.ip, family: 4 }];
  if (addresses.ip6 !== undefined) list.push({ iif: vif, address: addresses.ip6, family: 6 });
  return list;
}

function same(a: AllowedPair, b: AllowedPair): boolean {
  return a.iif === b.iif && a.address === b.address && a.family === b.family;
}

/** Converges one vif. `previous` = addresses last put into the allow-list (from the state store). */
export async function applyVif(
  sys: NatSystem,
  allow: AllowList,
  desired: DesiredVif,
  previous: Addresses | undefined,
  /** the shape observed just now by the caller, when it looked (saves a look) */
  seen?: ObservedStructure,
): Promise<ApplyOutcome> {
  const vif = desired.vif;
  if (desired.kind === "absent") {
    await removeVif(sys, allow, vif, previous, seen);
    return { result: "removed" };
  }
  if (desired.kind === "blocked") {
    await blockVif(sys, allow, vif, previous);
    return { result: "blocked" };
  }
  const wanted = pairs(vif, desired.native);
  const stale = pairs(vif, previous).filter((pair) => !wanted.some((w) => same(w, pair)));
  const observed = seen ?? (await observeStructure(sys, vif));
  const structure = planStructure(desired, observed);
  // 1. before anything moves, stale allow-list entries go (and all of them when re-plumbing)
  const replumb = structure.ops.some((op) => op.op !== "netns-del");
  const removeFirst = replumb ? pairs(vif, previous) : stale;
  if (removeFirst.length > 0) await allow.change([], removeFirst, { remove: [vif] });
  if (structure.gone) {
    await removeVif(sys, allow, vif, previous);
    return { result: "gone" };
  }
  // 2. the allow-list entry, side by side with the structure (namespace, Xen's
  //    vif moved in, the veth pair): an element keyed by `iifname . saddr` needs
  //    no interface, so its commit does not wait for the move. Still
  //    fail-closed: the entry admits only N on
  //    the name `vifX.Y`; until the move that is Xen's vif, from which N is the
  //    VM's own native address (what its traffic becomes after the NAT anyway),
  //    never another VM's. Any failure below removes the entry again.
  // An NDP entry can only be there if this vif was applied before (a removal costs the kernel a grace period).
  const ndp =
    desired.native.ip6 !== undefined && desired.kind === "plain"
      ? { add: [vif] }
      : previous === undefined
        ? {}
        : { remove: [vif] };
  const fresh = structure.ops.some((op) => op.op === "netns-add");
  const plan = planVif(desired, { freshNamespace: fresh, owner: sys.owner });
  const allowing = allow.change(wanted, [], ndp);
  // `allowing` is awaited below; this only keeps a rejection from being reported as unhandled meanwhile
  allowing.catch(() => undefined);
  const steps: Promise<unknown>[] = [allowing];
  try {
    await sys.structure(structure.ops);
  } catch (error) {
    await allowing.catch(() => undefined);
    await allow.change([], wanted, { remove: [vif] }).catch(() => undefined);
    throw error;
  }
  // 3. then the namespace's inside, its NAT table and the ProxyVM side (over
  //    netlink), all side by side: none waits for another. Opening the gate
  //    before the namespace is complete is still fail-closed: the namespace
  //    forwards nothing until its table rewrites V to N (a new namespace does
  //    not route); at worst its own kernel answers for N for a moment.
  if (plan.namespace !== undefined) {
    const ns = plan.namespace;
    // a table already carrying the planned mark stays (restart, SIGHUP): no grace period
    const table = fresh
      ? sys.nft(ns.nft, ns.name)
      : sys.natTableMark(ns.name).then((mark) => (mark === ns.mark ? undefined : sys.nft(ns.nft, ns.name)));
    steps.push(sys.inside(ns.name, ns.inside), table);
  }
  steps.push(applyProxyOps(sys, desired, plan.proxyvm));
  try {
    await firstFailure(steps);
  } catch (error) {
    // Xen's vif vanished inside the namespace (the VM is gone) between our look and this step.
    if (error instanceof Error && error.message.includes(`Cannot find device "${vif}"`)) {
      await removeVif(sys, allow, vif, desired.native);
      return { result: "gone" };
    }
    // fail closed: whatever got in, the allow-list entry goes again
    await allow.change([], wanted, { remove: [vif] }).catch(() => undefined);
    throw error;
  }
  const shape: ObservedStructure =
    desired.kind === "fake"
      ? { netnsExists: true, proxyLink: "ours" }
      : { netnsExists: false, proxyLink: "xen" };
  return { result: "applied", applied: desired.native, shape };
}

async function findLink(sys: NatSystem, name: string): Promise<LinkInfo> {
  const link = await sys.getLink(name);
  if (link !== undefined) return link;
  if (sys.dryRun) return { index: 0, name, alias: OWNED_ALIAS, up: false };
  throw new SystemError(`Cannot configure "${name}": the link does not exist`);
}

async function applyProxyOps(
  sys: NatSystem,
  desired: PlainVif | FakeVif,
  ops: readonly ProxyOp[],
): Promise<void> {
  const link = await findLink(sys, desired.vif);
  // Every request is sent at once: the kernel runs each before the next (in
  // the order sent), so addresses still precede the link going up and the
  // route; only the replies are awaited together.
  const sent: Promise<void>[] = [];
  for (const op of ops) {
    switch (op.op) {
      case "sysctl":
        sys.sysctl(op.path, op.value);
        break;
      case "link-up":
        sent.push(sys.setLinkUp(link));
        break;
      case "addr":
        sent.push(sys.replaceAddress(link, op.address, op.prefix));
        break;
      case "route":
        sent.push(sys.replaceRoute(link, op.dst, op.prefix, op.metric));
        break;
      case "neigh":
        sent.push(sys.replaceNeighbour(link, op.address, op.mac));
        break;
    }
  }
  await firstFailure(sent);
}

/** Blocks a vif: out of the allow-list (nothing from it is forwarded) and no route to it. */
async function blockVif(
  sys: NatSystem,
  allow: AllowList,
  vif: string,
  previous: Addresses | undefined,
): Promise<void> {
  await allow.change([], pairs(vif, previous), { remove: [vif] });
  const link = await sys.getLink(vif);
  if (link === undefined || previous === undefined) return;
  await sys.removeRoute(link, previous.ip, 32);
  if (previous.ip6 !== undefined) await sys.removeRoute(link, previous.ip6, 128);
}

/**
 * Removes everything owned for a vif. Keeps going after a failure and reports
 * all of them at the end (STYLE.md: netavark's teardown). Deleting the NAT
 * namespace is enough to delete the veth pair: the kernel destroys the
 * namespace's devices (and so our `vifX.Y`, their peer) asynchronously, in
 * batches, instead of one RCU grace period per explicit `link del`.
 */
export async function removeVif(
  sys: NatSystem,
  allow: AllowList,
  vif: string,
  previous: Addresses | undefined,
  seen?: ObservedStructure,
): Promise<void> {
  const failures: string[] = [];
  const step = async (action: () => Promise<unknown>) => {
    try {
      await action();
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  };
  const observed = seen ?? (await observeStructure(sys, vif));
  if (observed.proxyLink === "xen") {
    // Xen's vif is still here: its entries must go now, with our routes and neighbours on it
    await step(() => allow.change([], pairs(vif, previous), { remove: [vif] }));
    const link = await sys.getLink(vif);
    if (link !== undefined && previous !== undefined) {
      await step(() => sys.removeRoute(link, previous.ip, 32));
      await step(() => sys.removeNeighbour(link, previous.ip));
      if (previous.ip6 !== undefined) {
        await step(() => sys.removeRoute(link, previous.ip6 ?? "", 128));
        await step(() => sys.removeNeighbour(link, previous.ip6 ?? ""));
      }
    }
  } else {
    allow.deferRemove(pairs(vif, previous), [vif]);
  }
  await step(() => sys.structure(planTeardown(vif, observed)));
  if (failures.length > 0) throw new SystemError(`Cannot remove "${vif}" completely: ${failures.join("; ")}`);
}

/**
 * What each `qubes-fakeip-agent` command does, given normalised options.
 * Returns the exit code.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describeError } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { connectQubesDb } from "../../shared/qubesdb/index.js";
import type { QubesDbClient } from "../../shared/qubesdb/types.js";
import { notifyReady, notifyReloading } from "../../shared/sd-notify.js";
import { type Agent, createAgent, createAgentContext } from "../agent.js";
import { createFirewallComponent } from "../firewall/index.js";
import { createNatComponent, type NatComponent } from "../nat/component.js";
import { ANTISPOOF_KEY } from "../nat/names.js";
import { createDryRunSystem, createKernelSystem, type NatSystem } from "../nat/system.js";
import { sendControlRequest } from "../sources/control-socket.js";
import { createMemoryStore, openFileStore, type VifStore } from "../state.js";
import { type NetlinkAdapter, openNetlink } from "../system/netlink.js";
import type { GlobalOptions, VifArguments } from "./options.js";
import { formatStatus } from "./status-text.js";

interface Parts {
  readonly qubesdb: QubesDbClient;
  readonly netlink: NetlinkAdapter;
  readonly system: NatSystem;
  readonly store: VifStore;
  readonly nat: NatComponent;
  close(): Promise<void>;
}

/** A dry run reads the recorded vifs but never writes them. */
function openStore(globals: GlobalOptions, log: Logger): VifStore {
  if (!globals.dryRun) return openFileStore(globals.stateDir, log);
  if (!existsSync(join(globals.stateDir, "vifs"))) return createMemoryStore();
  return createMemoryStore(openFileStore(globals.stateDir, log).all());
}

async function openParts(globals: GlobalOptions, log: Logger, reconnect: boolean): Promise<Parts> {
  const qubesdb = await connectQubesDb({
    reconnect,
    ...(globals.qubesdbSocket === undefined ? {} : { socket: globals.qubesdbSocket }),
  });
  const netlink = openNetlink();
  const system = globals.dryRun
    ? createDryRunSystem(createKernelSystem(netlink), (text) => process.stdout.write(text))
    : createKernelSystem(netlink);
  const store = openStore(globals, log);
  const nat = createNatComponent(createAgentContext(qubesdb, log), { system, store });
  return {
    qubesdb,
    netlink,
    system,
    store,
    nat,
    async close() {
      netlink.close();
      await qubesdb.close().catch(() => undefined);
    },
  };
}

/** The daemon; with `--dry-run`, prints the plan of one full convergence and exits. */
export async function runDaemon(globals: GlobalOptions, log: Logger): Promise<number> {
  const parts = await openParts(globals, log, !globals.dryRun);
  if (globals.dryRun) {
    let failed = false;
    for (const key of await parts.nat.listKeys()) {
      process.stdout.write(`# ${key}\n`);
      await parts.nat.sync(key).catch((error: unknown) => {
        failed = true;
        process.stdout.write(`# ${key}: ${describeError(error)}\n`);
      });
    }
    await parts.close();
    return failed ? 1 : 0;
  }
  const ctx = createAgentContext(parts.qubesdb, log);
  // DNS answers that run out re-enter through the reconcile loop like any event.
  let agent: Agent | undefined;
  const firewall = createFirewallComponent(ctx, {
    dnsServers: globals.dnsServers,
    requestSync: (key) => agent?.reconciler.mark(firewall, key),
  });
  const components = [parts.nat, firewall];
  agent = createAgent({
    qubesdb: parts.qubesdb,
    log,
    components,
    nat: parts.nat,
    controlSocket: globals.controlSocket,
    netlink: parts.netlink,
    notify: { ready: () => notifyReady(), reloading: () => notifyReloading() },
  });
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info("stopping, data plane left in place", { signal });
      agent.stop().then(resolve, resolve);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  process.on("SIGHUP", () => {
    log.info("SIGHUP: full resync");
    agent.resync().catch((error: unknown) => log.error("resync failed", { error: describeError(error) }));
  });
  await agent.start();
  await stopped;
  await parts.nat.flush().catch(() => undefined);
  parts.netlink.close();
  return 0;
}

/** The hotplug hook: hand over to the daemon, or do the work here when none listens. */
export async function runHook(
  globals: GlobalOptions,
  command: "online" | "offline",
  args: VifArguments,
  log: Logger,
): Promise<number> {
  if (!globals.dryRun) {
    const reply = await sendControlRequest(globals.controlSocket, { type: "vif", command, ...args });
    if (reply !== undefined) {
      if (reply.ok) return 0;
      process.stderr.write(`qubes-fakeip-agent: ${reply.error ?? "failed"}\n`);
      return 1;
    }
  }
  const parts = await openParts(globals, log, false);
  try {
    const key = parts.nat.recordEvent({ ...args, online: command === "online" });
    await parts.nat.sync(ANTISPOOF_KEY);
    await parts.nat.sync(key);
    await parts.nat.flush();
    return 0;
  } catch (error) {
    process.stderr.write(`qubes-fakeip-agent: ${describeError(error)}\n`);
    return 1;
  } finally {
    await parts.close();
  }
}

/** `status`: from the daemon, else what the state directory records. */
export async function runStatus(globals: GlobalOptions, json: boolean): Promise<number> {
  const reply = await sendControlRequest(globals.controlSocket, { type: "status" });
  if (reply === undefined) {
    const store = existsSync(join(globals.stateDir, "vifs"))
      ? openFileStore(globals.stateDir, { debug() {}, info() {}, warn() {}, error() {} })
      : createMemoryStore();
    const vifs = Object.fromEntries(
      [...store.all()].map(([vif, r]) => [
        vif,
        { vif, native: r.event.ip, native6: r.event.ip6, state: r.event.online ? "recorded" : "offline" },
      ]),
    );
    const status = { running: false, vifs, components: {} };
    process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    return 0;
  }
  if (!reply.ok) {
    process.stderr.write(`qubes-fakeip-agent: ${reply.error ?? "failed"}\n`);
    return 1;
  }
  const status = { running: true, ...(reply.status as object) };
  process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}

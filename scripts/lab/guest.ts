#!/usr/bin/env node
/**
 * The lab's stand-in for the VMs' own network set-up (qubes-core-agent in a
 * real VM): for every client and the ProxyVM, watch the VM's OWN QubesDB and
 * keep its eth0 configured from `/qubes-ip`, `/qubes-netmask`,
 * `/qubes-gateway` — also when dom0 changes them while the VM runs.
 *
 *   guest.js --dir DIR
 */
import { describeError } from "../../shared/errors.js";
import { createLogger } from "../../shared/log.js";
import { connectQubesDb } from "../../shared/qubesdb/index.js";
import { GUEST_IFACE, GUEST_KEYS, guestConfigFrom, planGuestCommands } from "./guest-plan.js";
import { requireState } from "./state.js";
import { ipIn, ipJsonIn, sleep } from "./system.js";
import type { PlannedVm } from "./topology.js";

const log = createLogger();

async function observe(ns: string): Promise<{ addresses: string[]; defaultVia: string | undefined }> {
  const links = (await ipJsonIn(ns, ["-4", "addr", "show", "dev", GUEST_IFACE])) as Array<{
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  const addresses = (links[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  const routes = (await ipJsonIn(ns, ["-4", "route", "show", "default"])) as Array<{ gateway?: string }>;
  return { addresses, defaultVia: routes[0]?.gateway };
}

async function converge(vm: PlannedVm, values: Map<string, string>): Promise<void> {
  const desired = guestConfigFrom(values);
  if (desired === undefined) return;
  const commands = planGuestCommands(desired, await observe(vm.ns));
  for (const args of commands) await ipIn(vm.ns, args);
  if (commands.length > 0) {
    log.info("configured eth0", {
      vm: vm.name,
      ip: `${desired.ip}/${desired.prefix}`,
      gateway: desired.gateway,
    });
  }
}

async function follow(vm: PlannedVm): Promise<void> {
  const db = await connectQubesDb({ socket: vm.qubesdbSocket, reconnect: true });
  for (const key of GUEST_KEYS) await db.watch(key);
  const sync = async (): Promise<void> => {
    const values = new Map<string, string>();
    for (const key of GUEST_KEYS) {
      const value = await db.readText(key);
      if (value !== undefined) values.set(key, value);
    }
    try {
      await converge(vm, values);
    } catch (error) {
      log.error("cannot configure eth0", { vm: vm.name, reason: describeError(error) });
    }
  };
  await sync();
  for await (const _event of db.events()) await sync();
}

async function main(): Promise<void> {
  const i = process.argv.indexOf("--dir");
  const dir = process.argv[i + 1];
  if (i < 0 || dir === undefined) throw new Error("usage: guest.js --dir DIR");
  const state = requireState(dir);
  const vms = state.vms.filter((v) => v.role === "client" || v.role === "proxyvm");
  await Promise.all(
    vms.map(async (vm) => {
      for (;;) {
        try {
          await follow(vm);
        } catch (error) {
          log.warn("lost QubesDB, retrying", { vm: vm.name, reason: describeError(error) });
        }
        await sleep(200);
      }
    }),
  );
}

process.on("SIGTERM", () => process.exit(0));
main().catch((error: unknown) => {
  log.error("guest network stopped", { reason: describeError(error) });
  process.exit(1);
});

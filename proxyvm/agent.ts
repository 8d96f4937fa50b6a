/**
 * Builds and runs the agent from components (component.ts). The CLI passes
 * the NAT component and the firewall component; anything else (tests) can
 * call `createAgent` with its own list.
 */
import type { Server } from "node:net";
import { describeError } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import type { QubesDbClient } from "../shared/qubesdb/types.js";
import type { AgentComponent, AgentContext } from "./component.js";
import type { VifEvent } from "./desired.js";
import type { NatComponent } from "./nat/component.js";
import { Reconciler } from "./reconciler.js";
import {
  type ControlReply,
  type ControlRequest,
  listenControlSocket,
  requestSchema,
  sendControlRequest,
} from "./sources/control-socket.js";
import type { NetlinkAdapter } from "./system/netlink.js";

export interface AgentOptions {
  readonly qubesdb: QubesDbClient;
  readonly log: Logger;
  /** every component, the NAT one included */
  readonly components: readonly AgentComponent[];
  /** the component that takes hook events (`vif online|offline`) and link events */
  readonly nat: NatComponent;
  /** control socket path; none = no hook hand-over (tests) */
  readonly controlSocket?: string | undefined;
  /** link events (a vif that disappears is cleaned up without `offline`) */
  readonly netlink?: NetlinkAdapter | undefined;
  readonly notify?: { ready(): Promise<void>; reloading(): Promise<void> };
}

export interface Agent {
  readonly reconciler: Reconciler;
  /** Subscribes, converges everything once, then declares readiness. */
  start(): Promise<void>;
  /** SIGHUP: full resync. */
  resync(): Promise<void>;
  /** SIGTERM: finishes the current step and stops; the data plane stays. */
  stop(): Promise<void>;
  status(): Record<string, unknown>;
}

/** The shared context components are built with. */
export function createAgentContext(qubesdb: QubesDbClient, log: Logger): AgentContext {
  return { qubesdb, log, now: () => Date.now() };
}

function toEvent(request: Extract<ControlRequest, { type: "vif" }>): VifEvent {
  return {
    vif: request.vif,
    ip: request.ip,
    ip6: request.ip6,
    mac: request.mac,
    online: request.command === "online",
  };
}

export function createAgent(options: AgentOptions): Agent {
  const { qubesdb, log, components, nat } = options;
  const reconciler = new Reconciler({ components, log });
  let server: Server | undefined;
  let unwatchLinks: (() => void) | undefined;
  let events: Promise<void> | undefined;
  let stopping = false;

  const status = () => ({
    vifs: nat.status(),
    components: Object.fromEntries(components.filter((c) => c !== nat).map((c) => [c.name, c.status()])),
  });

  async function handle(request: ControlRequest): Promise<ControlReply> {
    if (request.type === "status") return { ok: true, status: status() };
    const key = nat.recordEvent(toEvent(request));
    log.info("vif event", { vif: request.vif, command: request.command, ip: request.ip });
    const result = await reconciler.markAndWait(nat, key);
    return result.ok ? { ok: true } : { ok: false, error: result.error ?? "failed" };
  }

  async function pumpEvents(): Promise<void> {
    try {
      for await (const path of qubesdb.events()) {
        if (stopping) break;
        await reconciler.handleQubesDbEvent(path);
      }
    } catch (error) {
      if (!stopping) log.error("QubesDB events ended", { error: describeError(error) });
    }
  }

  return {
    reconciler,
    status,
    async start() {
      // 1. subscribe first, so nothing that changes during the first sync is missed
      const watches = new Set(components.flatMap((c) => c.watches));
      for (const path of watches) await qubesdb.watch(path);
      events = pumpEvents();
      unwatchLinks = options.netlink?.watchLinks((event) => {
        for (const key of nat.keysForLink(event.name)) reconciler.mark(nat, key);
      });
      // ... and inside the NAT namespaces, where a fake-IP VM's own vif lives
      nat.watchNamespaces((key) => reconciler.mark(nat, key));
      // 2. accept hook events now (a hook must never find no daemon and act
      //    beside it), 3. converge everything once, 4. then declare readiness
      if (options.controlSocket !== undefined)
        server = await listenControlSocket(options.controlSocket, handle);
      reconciler.start();
      await reconciler.markAll();
      await reconciler.whenIdle();
      for (const component of components) {
        await component.warmUp?.().catch((error: unknown) => {
          log.warn("warm-up failed (only the first VM is slower)", {
            component: component.name,
            error: describeError(error),
          });
        });
      }
      // the hook's path too: a request parsed, one status round trip over our own socket
      requestSchema.parse({ type: "vif", command: "online", vif: "vif0.0", ip: "192.0.2.2" });
      if (options.controlSocket !== undefined) {
        await sendControlRequest(options.controlSocket, { type: "status" }).catch(() => undefined);
      }
      await options.notify?.ready();
      log.info("ready", { components: components.map((c) => c.name).join(",") });
    },
    async resync() {
      await options.notify?.reloading();
      try {
        await reconciler.markAll();
        await reconciler.whenIdle();
        log.info("resynced");
      } finally {
        // systemd waits for READY=1 after RELOADING=1: it comes whether or not the resync worked
        await options.notify?.ready();
      }
    },
    async stop() {
      stopping = true;
      unwatchLinks?.();
      // no new hook connections; a hook still waiting gets a closed connection and fails
      server?.close();
      await reconciler.stop();
      // components with timers (the firewall's DNS refresh) stop them; the data plane stays
      for (const component of components) (component as { close?: () => void }).close?.();
      await qubesdb.close().catch(() => undefined);
      await events;
    },
  };
}

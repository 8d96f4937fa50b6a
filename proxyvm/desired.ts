/**
 * The desired state of one vif, computed from facts (pure: no I/O). Facts are
 * the vif event of the hotplug hook (name, native addresses, MAC) and the
 * QubesDB values the agent read for it. Every value is validated here, once;
 * anything invalid leaves the vif blocked (nothing forwarded) with a reason
 * (STYLE.md: fail closed).
 */
import type { z } from "zod";
import { DEFAULT_MAC, ipv4Schema, ipv6Schema, macSchema, vifNameSchema } from "../shared/keys.js";

/** What the hook says about a vif (persisted in the state dir). */
export interface VifEvent {
  readonly vif: string;
  readonly ip: string;
  readonly ip6?: string | undefined;
  readonly mac?: string | undefined;
  /** `false` after `vif offline`: the vif is to be removed */
  readonly online: boolean;
}

/** The QubesDB values that matter to one vif, as read (raw text, `undefined` = key missing). */
export interface VifDbFacts {
  readonly visibleIp?: string | undefined;
  readonly visibleGateway?: string | undefined;
  readonly visibleIp6?: string | undefined;
  readonly visibleGateway6?: string | undefined;
  readonly netvmGateway?: string | undefined;
  readonly netvmGateway6?: string | undefined;
}

export interface VifAddresses {
  readonly ip: string;
  readonly ip6?: string | undefined;
}

/** A vif forwarded without NAT: the native addresses are what the VM sees. */
export interface PlainVif {
  readonly kind: "plain";
  readonly vif: string;
  /** route metric as the reference computes it: later domains win (32752 is the largest domid) */
  readonly metric: number;
  readonly mac: string;
  readonly native: VifAddresses;
  /** the ProxyVM's own address put on the vif (`/qubes-netvm-gateway`, `/qubes-netvm-gateway6`) */
  readonly gateway: string;
  readonly gateway6?: string | undefined;
}

/** A vif behind a NAT namespace: the VM sees `visible`, everything past the namespace sees `native`. */
export interface FakeVif extends Omit<PlainVif, "kind"> {
  readonly kind: "fake";
  readonly visible: {
    readonly ip: string;
    readonly gateway: string;
    /** set only with `visible-ip6`: else IPv6 is dropped for this VM */
    readonly ip6?: string | undefined;
    readonly gateway6?: string | undefined;
  };
}

export interface BlockedVif {
  readonly kind: "blocked";
  readonly vif: string;
  readonly reason: string;
}

export interface AbsentVif {
  readonly kind: "absent";
  readonly vif: string;
}

export type DesiredVif = PlainVif | FakeVif | BlockedVif | AbsentVif;

/** The largest Xen domain id; the reference uses `32752 - domid` as route metric. */
export const MAX_DOMID = 32752;

class Invalid extends Error {}

function check<T>(schema: z.ZodType<T, string>, what: string, value: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new Invalid(`Cannot use ${what} "${value}": ${result.error.issues[0]?.message ?? "invalid"}`);
}

function optional<T>(schema: z.ZodType<T, string>, what: string, value: string | undefined): T | undefined {
  return value === undefined || value === "" ? undefined : check(schema, what, value);
}

/** Desired state of one vif from its event (or none) and its QubesDB facts. */
export function planDesiredVif(vif: string, event: VifEvent | undefined, db: VifDbFacts): DesiredVif {
  if (event === undefined || !event.online) return { kind: "absent", vif };
  try {
    return buildDesired(vif, event, db);
  } catch (error) {
    if (error instanceof Invalid) return { kind: "blocked", vif, reason: error.message };
    throw error;
  }
}

function buildDesired(vif: string, event: VifEvent, db: VifDbFacts): PlainVif | FakeVif {
  check(vifNameSchema, "vif name", vif);
  const domid = Number(/^vif(\d+)\./.exec(vif)?.[1]);
  if (domid > MAX_DOMID) throw new Invalid(`Cannot use vif name "${vif}": domain id above ${MAX_DOMID}`);
  const ip = check(ipv4Schema, "native IPv4 address", event.ip);
  const ip6 = optional(ipv6Schema, "native IPv6 address", event.ip6);
  const mac = check(macSchema, "MAC address", event.mac ?? DEFAULT_MAC);
  if (db.netvmGateway === undefined || db.netvmGateway === "") {
    throw new Invalid(`Cannot route "${vif}": "/qubes-netvm-gateway" is missing`);
  }
  const gateway = check(ipv4Schema, "/qubes-netvm-gateway", db.netvmGateway);
  // A native IPv6 address without our own IPv6 address cannot be routed:
  // that VM simply gets no IPv6 (like the reference when the kernel has none).
  const gateway6 =
    ip6 === undefined ? undefined : optional(ipv6Schema, "/qubes-netvm-gateway6", db.netvmGateway6);
  const native = { ip, ip6: gateway6 === undefined ? undefined : ip6 };
  const plain: PlainVif = { kind: "plain", vif, metric: MAX_DOMID - domid, mac, native, gateway, gateway6 };
  const visibleIp = optional(ipv4Schema, `/mapped-ip/${ip}/visible-ip`, db.visibleIp);
  if (visibleIp === undefined || visibleIp === ip) return plain;
  const visible = buildVisible(ip, visibleIp, plain, db);
  // Without a visible IPv6 address a fake-IP VM gets no IPv6 at all (as in
  // the reference): its native IPv6 address would reveal its identity.
  if (visible.ip6 !== undefined) return { ...plain, kind: "fake", visible };
  return { ...plain, kind: "fake", native: { ip }, gateway6: undefined, visible };
}

function buildVisible(ip: string, visibleIp: string, plain: PlainVif, db: VifDbFacts): FakeVif["visible"] {
  const gatewayKey = `/mapped-ip/${ip}/visible-gateway`;
  const visibleGateway = optional(ipv4Schema, gatewayKey, db.visibleGateway);
  if (visibleGateway === undefined)
    throw new Invalid(`Cannot use a fake IP for "${plain.vif}": "${gatewayKey}" is missing`);
  if (visibleGateway === visibleIp) {
    throw new Invalid(
      `Cannot use visible IP "${visibleIp}" for "${plain.vif}": it equals the visible gateway`,
    );
  }
  // The namespace answers ARP for the visible gateway and holds the native
  // address on its ProxyVM side: a visible gateway equal to the native address
  // would make the VM's gateway and its own outside identity one address.
  if (visibleGateway === ip) {
    throw new Invalid(
      `Cannot use visible gateway "${visibleGateway}" for "${plain.vif}": it equals the native IP`,
    );
  }
  const visibleIp6 = optional(ipv6Schema, `/mapped-ip/${ip}/visible-ip6`, db.visibleIp6);
  if (visibleIp6 === undefined || plain.native.ip6 === undefined)
    return { ip: visibleIp, gateway: visibleGateway };
  const gateway6Key = `/mapped-ip/${ip}/visible-gateway6`;
  const visibleGateway6 = optional(ipv6Schema, gateway6Key, db.visibleGateway6);
  if (visibleGateway6 === undefined)
    throw new Invalid(`Cannot use a fake IPv6 for "${plain.vif}": "${gateway6Key}" is missing`);
  if (visibleGateway6 === visibleIp6) {
    throw new Invalid(
      `Cannot use visible IPv6 "${visibleIp6}" for "${plain.vif}": it equals the visible gateway`,
    );
  }
  return { ip: visibleIp, gateway: visibleGateway, ip6: visibleIp6, gateway6: visibleGateway6 };
}

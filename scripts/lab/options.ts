/** CLI options, validated once here; the rest of the lab trusts them. */
import { resolve } from "node:path";
import { z } from "zod";
import { InvalidInputError } from "../../shared/errors.js";
import { isIPv4, netmaskFromPrefix, prefixFromNetmask } from "../../shared/net/ip.js";
import {
  DEFAULT_CLIENTS,
  DEFAULT_DIR,
  DEFAULT_FAKE_GATEWAY,
  DEFAULT_FAKE_IP,
  DEFAULT_FAKE_NETMASK,
  type LabOptions,
} from "./topology.js";

/** more would not fit the domid block of 128 the lab reserves per run */
export const MAX_CLIENTS = 120;

const ipv4 = () => z.string().refine(isIPv4, { message: "not an IPv4 address" });

/** the command-line spelling of each option, for messages */
const FLAGS: Record<string, string> = {
  dir: "--dir",
  clients: "--clients",
  fakeIp: "--fake-ip",
  fakeGateway: "--fake-gateway",
  fakeNetmask: "--fake-netmask",
};

const schema = z.object({
  dir: z.string().min(1).default(DEFAULT_DIR),
  clients: z.coerce.number().int().min(0).max(MAX_CLIENTS).default(DEFAULT_CLIENTS),
  fakeIp: ipv4().default(DEFAULT_FAKE_IP),
  fakeGateway: ipv4().default(DEFAULT_FAKE_GATEWAY),
  fakeNetmask: z.string().default(DEFAULT_FAKE_NETMASK),
});

export function parseLabOptions(raw: Record<string, unknown>): LabOptions {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "option");
    throw new InvalidInputError(`Cannot use ${FLAGS[key] ?? key} "${String(raw[key])}": ${issue?.message}`);
  }
  let netmask: string;
  try {
    netmask = netmaskFromPrefix(prefixFromNetmask(parsed.data.fakeNetmask));
  } catch (error) {
    throw new InvalidInputError(
      `Cannot use --fake-netmask "${parsed.data.fakeNetmask}": ${(error as Error).message}`,
    );
  }
  return { ...parsed.data, dir: resolve(parsed.data.dir), fakeNetmask: netmask };
}

export function parseDir(raw: unknown): string {
  return resolve(typeof raw === "string" && raw.length > 0 ? raw : DEFAULT_DIR);
}

/**
 * `DIR/lab.json`: the plan and everything created so far. Each thing is
 * recorded BEFORE it is created, so `down` finds it even after `up` crashed
 * half-way; removing something that never got created is a no-op.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { InvalidInputError, NotFoundError } from "../../shared/errors.js";

export const STATE_FILE = "lab.json";

const vmSchema = z.object({
  name: z.string(),
  role: z.enum(["netvm", "proxyvm", "client"]),
  ns: z.string().regex(/^qfl-[0-9a-f]+-[a-z0-9-]+$/),
  domid: z.number().int().positive(),
  vif: z.string().regex(/^vif[0-9]+\.0$/),
  features: z.record(z.string(), z.string()),
  qubesdbSocket: z.string(),
});

const stateSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{4,12}$/),
  prefix: z.string(),
  dir: z.string(),
  options: z.object({
    dir: z.string(),
    clients: z.number().int(),
    fakeIp: z.string(),
    fakeGateway: z.string(),
    fakeNetmask: z.string(),
  }),
  qubesDir: z.string(),
  runDir: z.string(),
  logDir: z.string(),
  agentStateDir: z.string(),
  agentControlSocket: z.string(),
  serverLog: z.string(),
  vms: z.array(vmSchema),
  /** namespaces the lab created (or was about to), in creation order */
  namespaces: z.array(z.string()),
  /** the agent's NAT namespaces that may exist for this lab's vifs */
  natNamespaces: z.array(z.string()),
  /** detached processes by role name → pid file; stopped in reverse order */
  processes: z.array(z.object({ name: z.string(), pidFile: z.string() })),
  /** native IPs dom0 assigned, by VM name (known once the dom0 store exists) */
  nativeIps: z.record(z.string(), z.string()),
  phase: z.enum(["building", "up", "failed"]),
  /** pieces that were missing or failed during `up`, one reason each */
  problems: z.array(z.string()),
});

export type LabState = z.infer<typeof stateSchema>;

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Writes atomically (temporary file, then rename) so a crash never leaves half a file. */
export function saveState(state: LabState): void {
  mkdirSync(state.dir, { recursive: true });
  const path = statePath(state.dir);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** Reads the state of the lab in `dir`; `undefined` when there is none. */
export function loadState(dir: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(statePath(dir), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const parsed = stateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new InvalidInputError(
      `Cannot read lab state "${statePath(dir)}": ${parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data;
}

export function requireState(dir: string): LabState {
  const state = loadState(dir);
  if (state === undefined) {
    throw new NotFoundError(
      `Cannot find a lab in "${dir}": no ${STATE_FILE} (run "qubes-fakeip-lab up" first)`,
    );
  }
  return state;
}

let creationStopped = false;

/** After this, `recordBefore` refuses: an interrupted `up` creates nothing more while `down` runs. */
export function stopCreation(): void {
  creationStopped = true;
}

/** Records `item` in a list field and saves, before the caller creates it. */
export function recordBefore<K extends "namespaces" | "natNamespaces" | "processes">(
  state: LabState,
  field: K,
  item: LabState[K][number],
): void {
  if (creationStopped) throw new Error(`Cannot create ${JSON.stringify(item)}: the lab is being taken down`);
  (state[field] as unknown[]).push(item);
  saveState(state);
}

/**
 * Vif facts that survive an agent restart: what the hotplug hook said about
 * each vif (Xen calls the hook once; a restarted agent cannot ask again), and
 * which native addresses the agent last put into the allow-list (so a vif that
 * changes address or goes away has exactly those removed). One JSON file per
 * vif under `STATE_DIR/vifs/`, written atomically (temporary file + rename), so
 * a kill -9 leaves either the old or the new file, never half of one.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { describeError, InvalidInputError, SystemError } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import type { VifEvent } from "./desired.js";

/** Default `--state-dir`: tmpfs, so a ProxyVM reboot (when every vif is gone) starts clean. */
export const DEFAULT_STATE_DIR = "/run/qubes-fakeip";

const addressesSchema = z.object({ ip: z.string().max(64), ip6: z.string().max(64).optional() });

const recordSchema = z.object({
  event: z.object({
    vif: z.string().max(15),
    ip: z.string().max(64),
    ip6: z.string().max(64).optional(),
    mac: z.string().max(32).optional(),
    online: z.boolean(),
  }),
  applied: addressesSchema.optional(),
});

export interface VifRecord {
  readonly event: VifEvent;
  /** native addresses currently in the allow-list for this vif */
  readonly applied?: { readonly ip: string; readonly ip6?: string | undefined } | undefined;
}

export interface VifStore {
  get(vif: string): VifRecord | undefined;
  all(): ReadonlyMap<string, VifRecord>;
  put(vif: string, record: VifRecord): void;
  remove(vif: string): void;
}

/** An in-memory store (dry runs and unit tests). */
export function createMemoryStore(initial: Iterable<[string, VifRecord]> = []): VifStore {
  const records = new Map(initial);
  return {
    get: (vif) => records.get(vif),
    all: () => records,
    put: (vif, record) => void records.set(vif, record),
    remove: (vif) => void records.delete(vif),
  };
}

const FILE = /^(vif[0-9]{1,5}\.[0-9]{1,4})\.json$/;

/** Loads `STATE_DIR/vifs/*.json`; unreadable files are logged and ignored (the vif then has no facts). */
export function openFileStore(stateDir: string, log: Logger): VifStore {
  const dir = join(stateDir, "vifs");
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new SystemError(`Cannot create state directory "${dir}": ${describeError(error)}`, {
      cause: error,
    });
  }
  const records = new Map<string, VifRecord>();
  for (const name of readdirSync(dir)) {
    const vif = FILE.exec(name)?.[1];
    if (vif === undefined) continue;
    try {
      const parsed = recordSchema.parse(JSON.parse(readFileSync(join(dir, name), "utf8")));
      if (parsed.event.vif !== vif) throw new InvalidInputError(`it describes "${parsed.event.vif}"`);
      records.set(vif, parsed);
    } catch (error) {
      log.warn("ignoring unreadable vif state", { file: join(dir, name), error: describeError(error) });
    }
  }
  return {
    get: (vif) => records.get(vif),
    all: () => records,
    put(vif, record) {
      const file = join(dir, `${vif}.json`);
      const temporary = `${file}.${process.pid}.tmp`;
      writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
      renameSync(temporary, file);
      records.set(vif, record);
    },
    remove(vif) {
      rmSync(join(dir, `${vif}.json`), { force: true });
      records.delete(vif);
    },
  };
}

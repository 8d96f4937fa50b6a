/**
 * `--pool SPEC` for the dom0 commands: `file` (the default, images under
 * QUBES_DIR) or `lvm_thin:VG/THINPOOL` (Qubes' default installation uses
 * `lvm_thin:qubes_dom0/vm-pool`).
 */
import { InvalidInputError } from "../../shared/errors.js";
import { FilePool } from "./file-pool.js";
import { LvmThinPool } from "./lvm-pool.js";
import type { Pool } from "./pool.js";

export function openPool(spec: string, qubesDir: string): Pool {
  if (spec === "file") return new FilePool(qubesDir);
  const lvm = /^lvm_thin:([A-Za-z0-9_.+-]+)\/([A-Za-z0-9_.+-]+)$/.exec(spec);
  if (lvm !== null) return new LvmThinPool({ volumeGroup: lvm[1]!, thinPool: lvm[2]! });
  throw new InvalidInputError(`Cannot use pool "${spec}": expected "file" or "lvm_thin:VG/THINPOOL"`);
}

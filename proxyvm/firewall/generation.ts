/**
 * The generation stamp of a VM's compiled rules: a 32-bit hash of the chain
 * text. Why a hash and not a counter: equal rules give an equal stamp, so a
 * full reload, an agent restart or a DNS refresh that changes nothing keeps
 * every established flow on the fast path, and no state has to survive a
 * restart. A different rule text gets a different stamp (a collision, 2^-32,
 * would only let already-established flows of that VM skip one re-check).
 * 0 is reserved: it is the mark of flows nobody stamped.
 */
import { createHash } from "node:crypto";

export function hashGeneration(text: string): number {
  const value = createHash("sha256").update(text).digest().readUInt32BE(0);
  return value === 0 ? 1 : value;
}

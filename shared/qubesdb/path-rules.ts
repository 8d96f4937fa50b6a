/**
 * Which paths the daemon accepts (spec §4 step 2) and which it can store (§5.2
 * step 3, §7). Paths are latin1 strings: one character per wire byte.
 */
import { MAX_PATH_LENGTH } from "./codec.js";

/** `a-z A-Z 0-9 - _ . : @ /`; `@` is accepted by the reference daemon although its header omits it (§4). */
const ALLOWED = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@/")
  ALLOWED[c.charCodeAt(0)] = 1;

/** The header path check: allowed characters only, no `-` first. Empty and trailing `/` pass (§4). */
export function isAcceptedPath(path: string): boolean {
  if (path.length > MAX_PATH_LENGTH) return false;
  if (path.charCodeAt(0) === 0x2d) return false;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code > 0xff || ALLOWED[code] !== 1) return false;
  }
  return true;
}

/** A key that can be stored: accepted, starts with `/`, does not end with `/` (§5.2 step 3). */
export function isStorableKey(path: string): boolean {
  return path.length >= 2 && path[0] === "/" && !path.endsWith("/") && isAcceptedPath(path);
}

/** Why `path` is not an accepted path, or undefined when it is (for client-side messages). */
export function explainBadPath(path: string): string | undefined {
  if (path.length > MAX_PATH_LENGTH) return `longer than ${MAX_PATH_LENGTH} characters`;
  if (path.startsWith("-")) return 'starts with "-"';
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code > 0xff || ALLOWED[code] !== 1) {
      return `contains ${JSON.stringify(path[i])}; only a-z A-Z 0-9 - _ . : @ / are allowed`;
    }
  }
  return undefined;
}

/** Why `key` cannot be stored, or undefined when it can. */
export function explainBadKey(key: string): string | undefined {
  if (!key.startsWith("/")) return 'does not start with "/"';
  if (key.endsWith("/")) return 'ends with "/"';
  return explainBadPath(key);
}

/** Watch matching (§6.1): a string ending in `/` matches by prefix, any other exactly. */
export function watchMatches(watch: string, changedPath: string): boolean {
  return watch.endsWith("/") ? changedPath.startsWith(watch) : watch === changedPath;
}

/**
 * Error classes by meaning (STYLE.md: denoland/std). Messages read
 * `Cannot <do> "<value>": <why>`, sentence case, no final period.
 */

/** Input that crossed a boundary (CLI, file, QubesDB, netlink) and failed validation. */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
}

/** A requested thing does not exist (a key, a VM, a rule). */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** An external command or kernel operation failed. */
export class SystemError extends Error {
  override name = "SystemError";
}

/** Returns the message of any thrown value, with the causes chained after it. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 8; depth++) {
    if (current instanceof Error) {
      parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      current = undefined;
    }
  }
  return parts.join(": ");
}

/**
 * Makes untrusted text safe to quote inside an error message: rule strings
 * come from QubesDB and files, so they may hold control bytes or be huge.
 */

/** Longest piece of untrusted text quoted in an error message. */
const MAX_SHOWN = 160;

/** Escapes every character outside printable ASCII and truncates long text with "...". */
export function showText(text: string): string {
  const head = text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) : text;
  const escaped = head.replace(/[^\x20-\x7e]|["\\]/gu, (c) => {
    if (c === '"' || c === "\\") return `\\${c}`;
    const code = c.codePointAt(0) ?? 0;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
  return text.length > MAX_SHOWN ? `${escaped}...` : escaped;
}

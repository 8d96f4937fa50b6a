/**
 * A small GNU `getopt_long` work-alike for the QubesDB tools.
 *
 * Hand-written because the reference tools use getopt, and commander cannot
 * reproduce its semantics: options after operands (GNU permutation, so
 * `qubesdb-read /a -f` works), clustered flags with a trailing argument
 * (`-fn5`, `-d dom0`), an option argument that looks like an option
 * (`-n -1`), `--` ending the options, and unique abbreviations of long
 * options (`--def=x`).
 */

export interface GetoptSpec {
  /** getopt short option string, e.g. `"hxc:d:n:e:frqw"` (a `:` marks a required argument) */
  short: string;
  /** long option name → the option key it stands for and whether it takes an argument */
  long: Readonly<Record<string, { key: string; argument: boolean }>>;
}

export interface ParsedOption {
  /** the short letter, or the `key` of a long option */
  key: string;
  value: string | undefined;
  /** as the user wrote it, for messages */
  spelled: string;
}

export type GetoptResult =
  | { ok: true; options: ParsedOption[]; operands: string[] }
  | { ok: false; error: string };

function shortTakesArgument(spec: GetoptSpec, letter: string): boolean | undefined {
  const index = spec.short.indexOf(letter);
  if (index === -1 || letter === ":") return undefined;
  return spec.short[index + 1] === ":";
}

function parseLong(
  spec: GetoptSpec,
  arg: string,
  next: string | undefined,
): { option: ParsedOption; consumedNext: boolean } | { error: string } {
  const body = arg.slice(2);
  const eq = body.indexOf("=");
  const name = eq === -1 ? body : body.slice(0, eq);
  const inline = eq === -1 ? undefined : body.slice(eq + 1);
  const exact = spec.long[name];
  const candidates = exact !== undefined ? [name] : Object.keys(spec.long).filter((n) => n.startsWith(name));
  if (candidates.length === 0) return { error: `unrecognized option '--${name}'` };
  if (candidates.length > 1) return { error: `option '--${name}' is ambiguous` };
  const full = candidates[0]!;
  const long = spec.long[full]!;
  if (!long.argument) {
    if (inline !== undefined) return { error: `option '--${full}' doesn't allow an argument` };
    return { option: { key: long.key, value: undefined, spelled: `--${full}` }, consumedNext: false };
  }
  if (inline !== undefined)
    return { option: { key: long.key, value: inline, spelled: `--${full}` }, consumedNext: false };
  if (next === undefined) return { error: `option '--${full}' requires an argument` };
  return { option: { key: long.key, value: next, spelled: `--${full}` }, consumedNext: true };
}

export function getopt(args: readonly string[], spec: GetoptSpec): GetoptResult {
  const options: ParsedOption[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const parsed = parseLong(spec, arg, args[i + 1]);
      if ("error" in parsed) return { ok: false, error: parsed.error };
      options.push(parsed.option);
      if (parsed.consumedNext) i++;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      operands.push(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      const takes = shortTakesArgument(spec, letter);
      if (takes === undefined) return { ok: false, error: `invalid option -- '${letter}'` };
      if (!takes) {
        options.push({ key: letter, value: undefined, spelled: `-${letter}` });
        continue;
      }
      let value = arg.slice(j + 1);
      if (value === "") {
        const next = args[i + 1];
        if (next === undefined) return { ok: false, error: `option requires an argument -- '${letter}'` };
        value = next;
        i++;
      }
      options.push({ key: letter, value, spelled: `-${letter}` });
      break;
    }
  }
  return { ok: true, options, operands };
}

/**
 * The QubesDB command-line tools (spec §12): `qubesdb-read`, `-write`, `-rm`,
 * `-multiread`, `-list`, `-watch` and `qubesdb-cmd -c CMD`, with the
 * reference's options, output encoding, messages and exit codes, plus
 * `--socket PATH`. Differences on purpose (docs/qubesdb.md): a bad path never
 * kills the tool with SIGPIPE (rc 141) or an assertion (rc 134); it is a
 * normal failure with rc 1.
 */
import type { Writable } from "node:stream";
import { connectQubesDb, type QubesDbSocketClient } from "../client.js";
import { QubesDbNotFoundError } from "../errors.js";
import { getopt, type ParsedOption } from "./getopt.js";

export const TOOL_COMMANDS = ["read", "write", "rm", "multiread", "list", "watch"] as const;
export type ToolCommand = (typeof TOOL_COMMANDS)[number];

export interface ToolIo {
  stdout: Writable;
  stderr: Writable;
  env: Readonly<Record<string, string | undefined>>;
}

/** The reference's getopt string, plus `--default` and our `--socket`. */
const SPEC = {
  short: "hxc:d:n:e:frqw",
  long: {
    default: { key: "e", argument: true },
    socket: { key: "socket", argument: true },
    help: { key: "h", argument: false },
  },
};

const USAGE = `Usage: qubesdb-<read|write|rm|multiread|list|watch> [options] path [path...]
       qubesdb-cmd -c <read|write|rm|multiread|list|watch> [options] path [path...]
Options:
  -d DOM          use the daemon of domain DOM ($QUBESDB_RUN_DIR/qubesdb.DOM.sock)
  --socket PATH   use the daemon listening on PATH
  -f              full paths (read: "path = value"; multiread, list: no prefix stripping)
  -r              raw values, no \\xHH escaping
  -q              no error messages
  -w              read: wait until the key exists
  -x              read: remove the key after reading it
  -e VAL, --default VAL   read: print VAL when the (single) key is missing
  -n N            watch: number of events to wait for (0: none, negative: forever)
  -h              this help
`;

interface Settings {
  command: ToolCommand;
  full: boolean;
  raw: boolean;
  quiet: boolean;
  wait: boolean;
  remove: boolean;
  defaultValue: string | undefined;
  count: number | undefined;
  domain: string | undefined;
  socket: string | undefined;
  operands: string[];
}

/** §12 value encoding: bytes 0x20–0x7F as themselves, every other byte as `\xHH`. */
export function encodeValue(value: Uint8Array): string {
  let text = "";
  for (const byte of value) {
    text +=
      byte >= 0x20 && byte <= 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return text;
}

function isCommand(name: string | undefined): name is ToolCommand {
  return (TOOL_COMMANDS as readonly string[]).includes(name ?? "");
}

/** Splits `qubesdb-cmd -c CMD ...`; `-c` must be the first argument. */
function takeCommand(args: readonly string[]): { command: string | undefined; rest: readonly string[] } {
  const first = args[0];
  if (first === "-c") return { command: args[1], rest: args.slice(2) };
  if (first?.startsWith("-c")) return { command: first.slice(2), rest: args.slice(1) };
  return { command: undefined, rest: args };
}

/** Runs one tool invocation; resolves to the exit code. `fixed` is the command named by the program. */
export async function runTool(
  fixed: ToolCommand | undefined,
  args: readonly string[],
  io: ToolIo,
): Promise<number> {
  const say = (text: string) => io.stderr.write(`${text}\n`);
  const refuse = (text: string) => {
    say(text);
    return 1;
  };
  const usage = (code: number) => {
    io.stderr.write(USAGE);
    return code;
  };
  if (args.length === 0) return usage(0);
  let command: string | undefined = fixed;
  let rest = args;
  if (fixed === undefined) ({ command, rest } = takeCommand(args));
  const parsed = getopt(rest, SPEC);
  if (!parsed.ok) {
    say(`qubesdb-${command ?? "cmd"}: ${parsed.error}`);
    return usage(1);
  }
  const has = (key: string) => parsed.options.some((o) => o.key === key);
  const last = (key: string): ParsedOption | undefined => parsed.options.findLast((o) => o.key === key);
  if (has("c")) {
    say(
      fixed === undefined
        ? "-c must be first argument"
        : `-c valid only for qubesdb-cmd, not qubesdb-${fixed}`,
    );
    return 1;
  }
  if (has("h")) return usage(0);
  if (!isCommand(command)) return usage(0);
  const count = last("n")?.value;
  if (count !== undefined && command !== "watch") return refuse("-n valid only for watch command");
  const defaultValue = last("e")?.value;
  if (defaultValue !== undefined && command !== "read")
    return refuse("--default valid only for read command");
  const operands = parsed.operands;
  if (defaultValue !== undefined && operands.length !== 1)
    return refuse("--default only valid with exactly 1 path");
  if (command === "list" && operands.length !== 1) return refuse("LIST command accept only one path");
  if (operands.length === 0) return usage(0);
  if (command === "write" && operands.length % 2 !== 0) return refuse("Invalid number of parameters");
  if (count !== undefined && !/^[-+]?\d+$/.test(count))
    return refuse(`Cannot use -n "${count}": not an integer`);

  const settings: Settings = {
    command,
    full: has("f"),
    raw: has("r"),
    quiet: has("q"),
    wait: has("w"),
    remove: has("x"),
    defaultValue,
    count: count === undefined ? undefined : Number.parseInt(count, 10),
    domain: last("d")?.value,
    socket: last("socket")?.value,
    operands,
  };
  let client: QubesDbSocketClient;
  try {
    client = await connectQubesDb(
      { socket: settings.socket, domain: settings.domain, reconnect: false },
      io.env,
    );
  } catch {
    say(`Failed connect to ${settings.domain === undefined ? "local" : settings.domain} daemon`);
    return 1;
  }
  try {
    return await COMMANDS[settings.command](client, settings, io);
  } finally {
    await client.close();
  }
}

type CommandRunner = (client: QubesDbSocketClient, settings: Settings, io: ToolIo) => Promise<number>;

function reporter(settings: Settings, io: ToolIo): (text: string) => void {
  return (text) => {
    if (!settings.quiet) io.stderr.write(`${text}\n`);
  };
}

function formatValue(settings: Settings, value: Buffer): Buffer {
  return settings.raw ? value : Buffer.from(encodeValue(value), "latin1");
}

function writeLine(io: ToolIo, ...parts: Array<string | Buffer>): void {
  io.stdout.write(
    Buffer.concat([...parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : p)), NL]),
  );
}

const NL = Buffer.from("\n");

/** read -w: watch the exact path, then re-read after every event for it until the key exists. */
async function readWaiting(
  client: QubesDbSocketClient,
  path: string,
  events: AsyncIterator<string>,
): Promise<Buffer> {
  await client.watch(path);
  for (;;) {
    try {
      return await client.read(path);
    } catch (error) {
      if (!(error instanceof QubesDbNotFoundError)) throw error;
    }
    for (;;) {
      const next = await events.next();
      if (next.done) throw new Error(`Cannot wait for "${path}": connection closed`);
      if (next.value === path) break;
    }
  }
}

const COMMANDS: Record<ToolCommand, CommandRunner> = {
  async read(client, settings, io) {
    const fail = reporter(settings, io);
    let failed = false;
    let missing = false;
    const events = settings.wait ? client.events()[Symbol.asyncIterator]() : undefined;
    for (const path of settings.operands) {
      let value: Buffer;
      try {
        value = await client.read(path);
      } catch (error) {
        if (error instanceof QubesDbNotFoundError && settings.defaultValue !== undefined) {
          value = Buffer.from(settings.defaultValue, "utf8");
        } else if (error instanceof QubesDbNotFoundError && events !== undefined) {
          try {
            value = await readWaiting(client, path, events);
          } catch {
            fail(`Failed to read ${path}`);
            failed = true;
            continue;
          }
        } else {
          fail(`Failed to read ${path}`);
          if (error instanceof QubesDbNotFoundError) missing = true;
          else failed = true;
          continue;
        }
      }
      if (settings.full) writeLine(io, `${path} = `, formatValue(settings, value));
      else writeLine(io, formatValue(settings, value));
      if (settings.remove) {
        try {
          await client.rm(path);
        } catch {
          fail(`Failed to remove ${path}`);
          failed = true;
        }
      }
    }
    return failed ? 1 : missing ? 2 : 0;
  },

  async write(client, settings, io) {
    const fail = reporter(settings, io);
    let failed = false;
    for (let i = 0; i < settings.operands.length; i += 2) {
      const path = settings.operands[i]!;
      try {
        await client.write(path, settings.operands[i + 1]!);
      } catch {
        fail(`Failed to write ${path}`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },

  async rm(client, settings, io) {
    const fail = reporter(settings, io);
    let failed = false;
    for (const path of settings.operands) {
      try {
        await client.rm(path); // a missing key (NOENT) is success, like libqubesdb
      } catch {
        fail(`Failed to remove ${path}`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },

  async multiread(client, settings, io) {
    const fail = reporter(settings, io);
    let failed = false;
    for (const prefix of settings.operands) {
      try {
        for (const [key, value] of await client.multiread(prefix)) {
          writeLine(io, `${settings.full ? key : key.slice(prefix.length)} = `, formatValue(settings, value));
        }
      } catch {
        fail(`Failed to read ${prefix}`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },

  async list(client, settings, io) {
    const prefix = settings.operands[0]!;
    try {
      for (const key of await client.list(prefix))
        writeLine(io, settings.full ? key : key.slice(prefix.length));
      return 0;
    } catch {
      reporter(settings, io)(`Failed to list ${prefix}`);
      return 1;
    }
  },

  async watch(client, settings, io) {
    const fail = reporter(settings, io);
    const events = client.events()[Symbol.asyncIterator]();
    for (const path of settings.operands) {
      try {
        await client.watch(path);
      } catch {
        fail(`Failed to setup watch on ${path}`);
        return 1;
      }
    }
    const wanted = settings.count ?? 1;
    for (let seen = 0; wanted < 0 || seen < wanted; seen++) {
      const next = await events.next();
      if (next.done) {
        fail("Failed to read watch");
        return 1;
      }
      writeLine(io, next.value);
    }
    return 0;
  },
};

/** Entry point shared by the `bin` files: runs the tool and sets the exit code without cutting stdout short. */
export function main(fixed: ToolCommand | undefined): void {
  runTool(fixed, process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

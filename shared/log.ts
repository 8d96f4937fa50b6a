/**
 * Daemon logging (STYLE.md "daemon manners"): one line per event, level
 * prefix, `key=value` context, no timestamps (journald adds them).
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogContext = Readonly<Record<string, string | number | boolean | undefined>>;

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(message: string, context?: LogContext): void;
  info(message: string, context?: LogContext): void;
  warn(message: string, context?: LogContext): void;
  error(message: string, context?: LogContext): void;
}

function formatValue(value: string | number | boolean): string {
  const text = String(value);
  return /^[^\s"=]*$/.test(text) && text.length > 0 ? text : JSON.stringify(text);
}

/** Formats one log line: `LEVEL message key=value ...`. */
export function formatLogLine(level: LogLevel, message: string, context: LogContext = {}): string {
  const pairs = Object.entries(context)
    .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined)
    .map(([k, v]) => `${k}=${formatValue(v)}`);
  return [level.toUpperCase(), message, ...pairs].join(" ");
}

/** A logger writing to a stream (stderr by default); level from `$QUBES_FAKEIP_LOG` or `info`. */
export function createLogger(options: { level?: LogLevel; write?: (line: string) => void } = {}): Logger {
  const envLevel = process.env["QUBES_FAKEIP_LOG"];
  const level: LogLevel =
    options.level ?? (envLevel !== undefined && envLevel in ORDER ? (envLevel as LogLevel) : "info");
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const at =
    (l: LogLevel) =>
    (message: string, context?: LogContext): void => {
      if (ORDER[l] >= ORDER[level]) write(formatLogLine(l, message, context));
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A logger that discards everything (tests, the no-op driver). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

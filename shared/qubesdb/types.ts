/**
 * The QubesDB client contract that dom0 and the agent program against.
 * Implemented by `client.ts` (real socket); tests may pass a fake of it to
 * unit-test logic, never as proof that anything works end to end.
 */

export interface QubesDbClient {
  /** Value of an exact key. Throws `QubesDbNotFoundError` when the key is missing. */
  read(key: string): Promise<Buffer>;
  /** Value as UTF-8 text, or `undefined` when the key is missing. */
  readText(key: string): Promise<string | undefined>;
  /** Writes (replaces) one key. Validates key and value before sending; the error names the key. */
  write(key: string, value: string | Buffer): Promise<void>;
  /** Removes one key, or a subtree when `key` ends with `/`. Resolves `true` if something was removed, `false` on NOENT. */
  rm(key: string): Promise<boolean>;
  /** All entries whose key starts with `prefix` (string prefix), ascending byte order. */
  multiread(prefix: string): Promise<Map<string, Buffer>>;
  /** All keys starting with `prefix`, ascending. */
  list(prefix: string): Promise<string[]>;
  /** Registers a watch (`/`-terminated = prefix watch, else exact). Re-registered automatically after a reconnect. */
  watch(path: string): Promise<void>;
  /** Removes one registration; `false` when there was none. */
  unwatch(path: string): Promise<boolean>;
  /**
   * Watch events (the event path) in arrival order, never lost between replies.
   * After a reconnect the iterator yields the special path `""` once, meaning
   * "events may have been missed: re-read everything you depend on".
   */
  events(): AsyncIterable<string>;
  /** Closes the connection; pending requests reject with `QubesDbDisconnectedError`. */
  close(): Promise<void>;
}

export interface QubesDbConnectOptions {
  /** explicit socket path (`--socket PATH`) */
  socket?: string | undefined;
  /** `-d NAME`: `$QUBESDB_RUN_DIR/qubesdb.NAME.sock` */
  domain?: string | undefined;
  /** reconnect (and re-register watches) when the daemon goes away; default true for long-lived users */
  reconnect?: boolean;
}

/**
 * The lab's QubesDB access (reading what dom0 published, what the agent
 * reported), through the project's own client library.
 */
import { connectQubesDb, type QubesDbClient } from "../../shared/qubesdb/index.js";

export async function withQubesDb<T>(socket: string, use: (db: QubesDbClient) => Promise<T>): Promise<T> {
  const db = await connectQubesDb({ socket, reconnect: false });
  try {
    return await use(db);
  } finally {
    await db.close().catch(() => undefined);
  }
}

/** Values of `keys` (missing keys are absent from the map). */
export function readKeys(socket: string, keys: readonly string[]): Promise<Map<string, string>> {
  return withQubesDb(socket, async (db) => {
    const values = new Map<string, string>();
    for (const key of keys) {
      const value = await db.readText(key);
      if (value !== undefined) values.set(key, value);
    }
    return values;
  });
}

export async function readKey(socket: string, key: string): Promise<string | undefined> {
  return (await readKeys(socket, [key])).get(key);
}

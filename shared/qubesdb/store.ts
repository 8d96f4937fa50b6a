/**
 * The database (spec §7): a flat map from key to value, kept sorted by byte
 * order. Keys are latin1 strings, so JavaScript's `<` on them is `strcmp`.
 * A sorted key array plus a Map gives O(log n) prefix lookups and O(1) reads;
 * inserts and removals move array elements, which is cheap at QubesDB sizes.
 */

export class Store {
  readonly #values = new Map<string, Buffer>();
  #keys: string[] = [];

  get size(): number {
    return this.#keys.length;
  }

  get(key: string): Buffer | undefined {
    return this.#values.get(key);
  }

  /** Replaces or creates `key`. */
  set(key: string, value: Buffer): void {
    if (!this.#values.has(key)) this.#keys.splice(this.#lowerBound(key), 0, key);
    this.#values.set(key, value);
  }

  /** Removes one key; true if it existed. */
  delete(key: string): boolean {
    if (!this.#values.delete(key)) return false;
    this.#keys.splice(this.#lowerBound(key), 1);
    return true;
  }

  /** Removes every key starting with `prefix`; returns how many went. */
  deletePrefix(prefix: string): number {
    const [start, end] = this.#range(prefix);
    if (start === end) return 0;
    for (let i = start; i < end; i++) this.#values.delete(this.#keys[i]!);
    this.#keys.splice(start, end - start);
    return end - start;
  }

  /** Keys starting with `prefix` (string prefix, not path components), ascending. */
  keys(prefix: string): string[] {
    const [start, end] = this.#range(prefix);
    return this.#keys.slice(start, end);
  }

  /** Entries starting with `prefix`, ascending. */
  entries(prefix: string): Array<[string, Buffer]> {
    const [start, end] = this.#range(prefix);
    const result: Array<[string, Buffer]> = new Array(end - start);
    for (let i = start; i < end; i++) {
      const key = this.#keys[i]!;
      result[i - start] = [key, this.#values.get(key)!];
    }
    return result;
  }

  #lowerBound(key: string): number {
    let low = 0;
    let high = this.#keys.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#keys[mid]! < key) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** [start, end) of the keys that start with `prefix`. */
  #range(prefix: string): [number, number] {
    const start = this.#lowerBound(prefix);
    let end = start;
    while (end < this.#keys.length && this.#keys[end]!.startsWith(prefix)) end++;
    return [start, end];
  }
}

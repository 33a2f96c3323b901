// The process-wide cache in front of the registry: API keys, tenants, systems, bindings, grants
// and opened credentials, so that a warm invoke needs no database round trip.
//
// Correctness: every registry write in this process invalidates everything (writes are rare,
// reads are the hot path), and a load that overlapped an invalidation is not stored, so a changed
// or revoked item is never served after the change. Entries also expire after ttlMs, which bounds
// staleness for writes made by other processes. Memory is bounded by maxEntries (least recently
// used entries go first), not by the registry's size.

export interface RegistryCacheOptions {
  /** default 50,000 */
  maxEntries?: number;
  /** default 10,000 ms */
  ttlMs?: number;
}

interface Entry {
  value: unknown;
  expires: number;
}

export class RegistryCache {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;
  readonly maxEntries: number;
  readonly ttlMs: number;
  /** hits and misses since start (for /metrics and benchmarks) */
  readonly stats = { hits: 0, misses: 0, invalidations: 0 };

  constructor(opts: RegistryCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 50_000;
    this.ttlMs = opts.ttlMs ?? 10_000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value, or undefined (a cached null is a known absence). */
  get<T>(key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.stats.misses++;
      return undefined;
    }
    if (e.expires <= now) {
      this.entries.delete(key);
      this.stats.misses++;
      return undefined;
    }
    // Re-insert: the Map's order is then least recently used first.
    this.entries.delete(key);
    this.entries.set(key, e);
    this.stats.hits++;
    return e.value as T;
  }

  /** A token to take before reading the database; store() only keeps values read under it. */
  begin(): number {
    return this.generation;
  }

  store(token: number, key: string, value: unknown, now = Date.now()): void {
    if (token !== this.generation || this.maxEntries === 0) return;
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expires: now + this.ttlMs });
  }

  /** Loads one key through the cache. */
  async load<T>(key: string, loader: () => Promise<T>): Promise<T> {
    const hit = this.get<T>(key);
    if (hit !== undefined) return hit;
    const token = this.begin();
    const value = await loader();
    this.store(token, key, value);
    return value;
  }

  invalidate(): void {
    this.generation++;
    this.entries.clear();
    this.stats.invalidations++;
  }
}

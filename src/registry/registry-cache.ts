// The process-wide cache in front of the registry: API keys, tenants, systems, bindings, grants
// and opened credentials, so that a warm invoke needs no database round trip.
//
// Correctness: every registry write in this process invalidates everything (writes are rare,
// reads are the hot path), and a load that overlapped an invalidation is not stored, so a changed
// or revoked item is never served after the change. Entries also expire after ttlMs, which bounds
// staleness for writes made by other processes. Memory is bounded by maxEntries, not by the
// registry's size: when full, the cache evicts by the clock (second chance), an approximation of
// least recently used with a ring of keys of its own; a hit only marks its entry, an eviction is
// O(1) amortised. (A Map LRU, deleting and re-adding the key on each hit, is slow in a large V8
// Map: deleted slots stay in their bucket's chain until the table is rebuilt. At ~5,000 entries a
// hit cost ~4 us, bench/RESULTS.md.)
//
// Outages: an expired entry is not thrown away at once. A lookup that finds it expired reloads it
// as usual; only when that reload fails because the database is unreachable is the expired value
// served instead, for at most staleMs past its expiry. Known absences (a cached null: an unknown
// or revoked key, a deleted binding) are served the same way, so a revocation seen before the
// outage stays in force. What was never cached still needs the database. Once a reload has
// found the database unreachable, expired entries are served without trying it again for
// RECHECK_MS, so a database that hangs (rather than refuses) costs one wait, not one per request
// (and once it is back, expired entries may be served up to RECHECK_MS longer).
import { isDatabaseUnavailable } from '../utils/database-errors.js';

const RECHECK_MS = 1000;

export interface RegistryCacheOptions {
  /** default 50,000 */
  maxEntries?: number;
  /** default 10,000 ms */
  ttlMs?: number;
  /** how long past its expiry an entry may still be served while the database is unreachable (default 1 hour; 0: never) */
  staleMs?: number;
}

interface Entry {
  value: unknown;
  expires: number;
  /** read since the clock's hand last passed it: it gets a second chance */
  used: boolean;
  /** its place in the ring */
  slot: number;
}

export class RegistryCache {
  private readonly entries = new Map<string, Entry>();
  /** the clock: the key stored in each slot (a slot whose key has gone since is free) */
  private ring: string[] = [];
  private hand = 0;
  private generation = 0;
  /** until then the database counts as unreachable: expired entries are served without a reload */
  private unreachableUntil = 0;
  readonly maxEntries: number;
  readonly ttlMs: number;
  readonly staleMs: number;
  /** hits, misses and expired values served during outages, since start (for /metrics and benchmarks) */
  readonly stats = { hits: 0, misses: 0, invalidations: 0, staleServed: 0 };

  constructor(opts: RegistryCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 50_000;
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.staleMs = opts.staleMs ?? 3_600_000;
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
      if (e.expires + this.staleMs <= now) this.entries.delete(key);
      else if (now < this.unreachableUntil) return this.serve<T>(e, 'staleServed');
      // Kept (within the stale window) for stale(): the caller reloads it now.
      this.stats.misses++;
      return undefined;
    }
    return this.serve<T>(e, 'hits');
  }

  /**
   * The cached value when it has not expired (a hit), else undefined, counted nowhere: for a caller
   * that then asks through get() (a registry loader), which counts the miss or serves it stale.
   */
  fresh<T>(key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    return e && e.expires > now ? this.serve<T>(e, 'hits') : undefined;
  }

  /**
   * An expired value still within the stale window, for a caller whose reload failed with
   * `error`; undefined when there is none or the error is not an unreachable database.
   */
  stale<T>(key: string, error: unknown, now = Date.now()): T | undefined {
    if (!isDatabaseUnavailable(error)) return undefined;
    this.unreachableUntil = now + RECHECK_MS;
    const e = this.entries.get(key);
    if (!e || e.expires + this.staleMs <= now) return undefined;
    return this.serve<T>(e, 'staleServed');
  }

  /** An entry's value, served: marked as read for the clock, and counted. */
  private serve<T>(e: Entry, counted: 'hits' | 'staleServed'): T {
    e.used = true;
    this.stats[counted]++;
    return e.value as T;
  }

  /** A token to take before reading the database; store() only keeps values read under it. */
  begin(): number {
    return this.generation;
  }

  store(token: number, key: string, value: unknown, now = Date.now()): void {
    if (token !== this.generation || this.maxEntries === 0) return;
    const expires = now + this.ttlMs;
    const old = this.entries.get(key);
    if (old) {
      // A reload: updated in place (no Map delete and set) and, just read, marked as used.
      old.value = value;
      old.expires = expires;
      old.used = true;
      return;
    }
    const slot = this.ring.length < this.maxEntries ? this.ring.length : this.freeSlot();
    this.ring[slot] = key;
    this.entries.set(key, { value, expires, used: false, slot });
  }

  /**
   * Turns the hand to a slot that is free, or whose entry was not read since the last turn (that
   * entry is evicted).
   */
  private freeSlot(): number {
    for (;;) {
      const slot = this.hand;
      this.hand = (slot + 1) % this.ring.length;
      const key = this.ring[slot]!;
      const e = this.entries.get(key);
      if (!e || e.slot !== slot) return slot; // its entry went, or its key was stored again in another slot
      if (e.used) e.used = false;
      else {
        this.entries.delete(key);
        return slot;
      }
    }
  }

  /** Loads one key through the cache. */
  async load<T>(key: string, loader: () => Promise<T>): Promise<T> {
    const hit = this.get<T>(key);
    if (hit !== undefined) return hit;
    const token = this.begin();
    let value: T;
    try {
      value = await loader();
    } catch (error) {
      const old = this.stale<T>(key, error);
      if (old !== undefined) return old;
      throw error;
    }
    this.store(token, key, value);
    return value;
  }

  invalidate(): void {
    this.generation++;
    this.entries.clear();
    this.ring = [];
    this.hand = 0;
    this.stats.invalidations++;
  }
}

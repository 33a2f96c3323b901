// Fixed-window counters in memory, one per key (a caller, a client address). Bounded: at most
// maxKeys windows are kept; ended windows, then the oldest, are dropped first. Per process: with
// HUB_REDIS_URL the hub uses RedisLimiter (redis-limiter.ts) instead, and this one only while
// Redis does not answer.

export interface Verdict {
  allowed: boolean;
  /** when the caller may try again (0 when allowed) */
  retryAfterMs: number;
}

/**
 * Counts events per key in fixed windows. The in-memory limiter answers at once; the Redis one
 * after a round trip, so callers always `await` the verdict.
 */
export interface Limiter {
  /** Counts one event for key against limit (an event over the limit is refused and not counted). */
  hit(key: string, limit: number): Verdict | Promise<Verdict>;
  /** Is key over limit, without counting? */
  check(key: string, limit: number): Verdict | Promise<Verdict>;
}

export class RateLimiter implements Limiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** windows held */
  get size(): number {
    return this.windows.size;
  }

  /** Counts one event for key against limit. */
  hit(key: string, limit: number, now = Date.now()): Verdict {
    const w = this.current(key, now);
    if (w.count >= limit) return { allowed: false, retryAfterMs: w.start + this.windowMs - now };
    w.count++;
    return { allowed: true, retryAfterMs: 0 };
  }

  /** Is key over limit, without counting? */
  check(key: string, limit: number, now = Date.now()): Verdict {
    const w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs || w.count < limit) return { allowed: true, retryAfterMs: 0 };
    return { allowed: false, retryAfterMs: w.start + this.windowMs - now };
  }

  private current(key: string, now: number) {
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      this.windows.delete(key); // re-insert: Map order is then oldest-first
      if (this.windows.size >= this.maxKeys) this.makeRoom(now);
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    return w;
  }

  /**
   * Full: drops, from the oldest, every window that has ended and then as many as it takes to free
   * a tenth of maxKeys, in one pass. (Dropping the first key on each insert walked past every
   * slot deleted before it, which V8 keeps until the Map is rebuilt: ~28 us per new key at
   * 100,000 windows, a cost an address-spraying client could make the hub pay on every request.)
   */
  private makeRoom(now: number): void {
    const keep = this.maxKeys - Math.ceil(this.maxKeys / 10);
    for (const [key, w] of this.windows) {
      if (this.windows.size <= keep && now - w.start < this.windowMs) break;
      this.windows.delete(key);
    }
  }
}

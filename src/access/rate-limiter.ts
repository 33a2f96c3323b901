// Fixed-window counters in memory, one per key (a caller, a client address). Bounded: at most
// maxKeys windows are kept; the oldest are dropped first. Per process: with HUB_REDIS_URL the hub
// uses RedisLimiter (redis-limiter.ts) instead, and this one only while Redis does not answer.

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
      if (this.windows.size >= this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    return w;
  }
}

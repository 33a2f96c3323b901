// Fixed-window counters in Redis, shared by every hub process that uses the same Redis and prefix.
// One round trip per verdict: a Lua script reads, counts and sets the window's expiry atomically,
// so two processes counting the same key at once never lose a count or leave a key without expiry.
// The window opens at a key's first counted event and lasts windowMs (as in RateLimiter); the
// time left (PTTL) is the retryAfterMs of a refusal.
//
// Failure policy: limits protect the hub and the called systems, but a Redis outage must not stop
// all traffic. When Redis does not answer (down, or slower than HUB_REDIS_TIMEOUT_MS) the verdict
// comes from this process's own RateLimiter for that call, and onFallback is told (a metric and a
// throttled warning). During an outage each process then allows up to the full limit on its own.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { RateLimiter, type Limiter, type Verdict } from './rate-limiter.js';

// KEYS[1] the window's counter; ARGV[1] window ms; ARGV[2] limit (-1: none). Returns {allowed, pttl}.
const HIT = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[2])
local allowed = 0
if limit < 0 or n < limit then
  redis.call('INCR', KEYS[1])
  allowed = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {allowed, ttl}`;
// KEYS[1] the window's counter; ARGV[1] limit. Returns {allowed, pttl}.
const CHECK = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then return {1, 0} end
return {0, redis.call('PTTL', KEYS[1])}`;

const script = (text: string) => ({ text, sha: createHash('sha1').update(text).digest('hex') });
const SCRIPTS = { hit: script(HIT), check: script(CHECK) };

export interface RedisLimiterOptions {
  /** names the counters in keys and metrics: 'quota' (invokes per caller), 'auth' (failures per address) */
  name: string;
  /** every key starts with it (HUB_REDIS_PREFIX), so several hubs or test runs can share a Redis */
  prefix: string;
  windowMs: number;
  onFallback: (name: string, error: unknown) => void;
}

export class RedisLimiter implements Limiter {
  /** this process's counters, used only for calls Redis did not answer */
  readonly fallback: RateLimiter;

  constructor(
    private readonly redis: Redis,
    private readonly opts: RedisLimiterOptions,
  ) {
    this.fallback = new RateLimiter(opts.windowMs);
  }

  async hit(key: string, limit: number): Promise<Verdict> {
    try {
      return this.verdict(await this.run(SCRIPTS.hit, this.keyOf(key), [this.opts.windowMs, Number.isFinite(limit) ? limit : -1]));
    } catch (error) {
      this.opts.onFallback(this.opts.name, error);
      return this.fallback.hit(key, limit);
    }
  }

  async check(key: string, limit: number): Promise<Verdict> {
    if (!Number.isFinite(limit)) return { allowed: true, retryAfterMs: 0 };
    try {
      return this.verdict(await this.run(SCRIPTS.check, this.keyOf(key), [limit]));
    } catch (error) {
      this.opts.onFallback(this.opts.name, error);
      return this.fallback.check(key, limit);
    }
  }

  // Keys carry client data (a client address, a caller id): hashed, so a key has one shape whatever
  // a client sends, and Redis holds no address or caller id in clear (an unkeyed hash: it hides,
  // it does not protect a small space such as IPv4 addresses from being tried).
  private keyOf(key: string): string {
    return `${this.opts.prefix}${this.opts.name}:${createHash('sha256').update(key).digest('base64url').slice(0, 32)}`;
  }

  private verdict(reply: unknown): Verdict {
    const [allowed, pttl] = reply as [number, number];
    if (allowed === 1) return { allowed: true, retryAfterMs: 0 };
    // A refusal always has a live window; should it have expired in between, a full window is safe.
    return { allowed: false, retryAfterMs: pttl > 0 ? pttl : this.opts.windowMs };
  }

  private async run(s: { text: string; sha: string }, key: string, args: number[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(s.sha, 1, key, ...args);
    } catch (error) {
      // The first call after Redis starts (or is flushed) loads the script.
      if (error instanceof Error && error.message.startsWith('NOSCRIPT')) return this.redis.eval(s.text, 1, key, ...args);
      throw error;
    }
  }
}

/** Reports fallbacks: a counter for every one, a warning at most once per everyMs. */
export function fallbackReporter(log: Logger, count: (name: string) => void, everyMs = 30_000): (name: string, error: unknown) => void {
  let lastWarned = Number.NEGATIVE_INFINITY;
  let since = 0;
  return (name, error) => {
    count(name);
    since++;
    const now = Date.now();
    if (now - lastWarned < everyMs) return;
    log.warn('redis did not answer; limit counted in this process only', { limiter: name, fallbacks: since, error });
    lastWarned = now;
    since = 0;
  };
}

// The resilience pieces on their own, where a loopback server cannot pin down timing: Retry-After
// parsing, the retry budget, and the breaker's single half-open probe.
import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from '../src/invoke/circuit-breaker.js';
import { Bulkhead } from '../src/invoke/bulkhead.js';
import { parseRetryAfter, RetryPolicy } from '../src/invoke/retry-policy.js';
import { childTraceparent, traceOf } from '../src/invoke/traceparent.js';

describe('Retry-After', () => {
  it('reads delay-seconds and HTTP dates, and ignores junk', () => {
    const now = Date.parse('Wed, 25 Nov 2026 10:00:00 GMT');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 25 Nov 2026 10:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 25 Nov 2026 09:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(['2', '9'], now)).toBe(2000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('RetryPolicy', () => {
  const policy = new RetryPolicy({ maxRetries: 2, baseDelayMs: 100, maxDelayMs: 150 }, () => 1);
  it('retries only what a repeat can cure', () => {
    expect(policy.delayBefore(1, { status: 503 }, 10_000)).toBe(100);
    expect(policy.delayBefore(2, { status: 502 }, 10_000)).toBe(150); // 200 capped at 150
    expect(policy.delayBefore(3, { status: 503 }, 10_000)).toBeNull(); // past maxRetries
    for (const status of [200, 400, 401, 404, 409, 500, 501]) expect(policy.delayBefore(1, { status }, 10_000)).toBeNull();
    expect(policy.delayBefore(1, { error: { code: 'UPSTREAM_UNREACHABLE' } }, 10_000)).toBe(100);
    expect(policy.delayBefore(1, { error: { code: 'UPSTREAM_TIMEOUT' } }, 10_000)).toBeNull();
    expect(policy.delayBefore(1, { error: { code: 'UPSTREAM_RESPONSE_TOO_LARGE' } }, 10_000)).toBeNull();
  });
  it('prefers Retry-After, and never waits past the deadline', () => {
    expect(policy.delayBefore(1, { status: 429, retryAfter: '2' }, 10_000)).toBe(2000);
    expect(policy.delayBefore(1, { status: 429, retryAfter: '20' }, 10_000)).toBeNull();
    expect(policy.delayBefore(1, { status: 503 }, 105)).toBeNull(); // no time left to be answered
  });
  it('jitters the backoff over [0, ceiling]', () => {
    const low = new RetryPolicy({ maxRetries: 1, baseDelayMs: 100, maxDelayMs: 1000 }, () => 0);
    expect(low.delayBefore(1, { status: 503 }, 10_000)).toBe(0);
  });
});

describe('CircuitBreakers', () => {
  it('opens after the threshold, lets exactly one probe through half-open, closes on its success', () => {
    const changes: string[] = [];
    const b = new CircuitBreakers({ failureThreshold: 2, openMs: 1000 }, (o, s) => changes.push(`${o}:${s}`));
    const t0 = Date.now();
    b.acquire('http://a').failure();
    expect(b.state('http://a')).toBe('closed');
    b.acquire('http://a').failure();
    expect(b.state('http://a')).toBe('open');
    expect(() => b.acquire('http://a', t0 + 10)).toThrow(expect.objectContaining({ code: 'CIRCUIT_OPEN' }));
    expect(b.acquire('http://b')).toBeDefined(); // another origin is untouched
    const probe = b.acquire('http://a', t0 + 5000);
    expect(() => b.acquire('http://a', t0 + 5000)).toThrow(expect.objectContaining({ code: 'CIRCUIT_OPEN' }));
    probe.success();
    expect(b.state('http://a')).toBe('closed');
    expect(b.troubled()).toEqual([]);
    expect(changes).toEqual(['http://a:open', 'http://a:half_open', 'http://a:closed']);
  });
  it('counts consecutive failures only: a success in between starts again', () => {
    const b = new CircuitBreakers({ failureThreshold: 2, openMs: 1000 });
    b.acquire('o').failure();
    b.acquire('o').success();
    b.acquire('o').failure();
    expect(b.state('o')).toBe('closed');
  });
});

describe('Bulkhead', () => {
  it('refuses past the cap per origin and gives slots back once', () => {
    const bulkhead = new Bulkhead(2);
    const a = bulkhead.enter('x');
    bulkhead.enter('x');
    expect(() => bulkhead.enter('x')).toThrow(expect.objectContaining({ code: 'CIRCUIT_OPEN' }));
    bulkhead.enter('y');
    a();
    a(); // a second release must not free a slot it does not hold
    bulkhead.enter('x');
    expect(() => bulkhead.enter('x')).toThrow();
  });
});

describe('traceparent', () => {
  it('keeps a valid trace id and flags, and starts a new trace otherwise', () => {
    const t = traceOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    expect(t).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '00' });
    expect(childTraceparent(t)).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    for (const bad of ['ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', '00-xyz', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra']) {
      expect(traceOf(bad).traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    }
    // A future version may carry more fields.
    expect(traceOf('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra').traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });
});

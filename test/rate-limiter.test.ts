// The in-memory limiter's bound: it never holds more than maxKeys windows, and when full it drops
// ended windows first and then the oldest, so the clients being counted right now keep their counts.
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/access/rate-limiter.js';

describe('in-memory rate limiter when full', () => {
  it('never holds more than maxKeys windows', () => {
    const rl = new RateLimiter(60_000, 50);
    for (let i = 0; i < 1_000; i++) {
      expect(rl.hit(`client-${i}`, 5, 1_000 + i).allowed).toBe(true);
      expect(rl.size).toBeLessThanOrEqual(50);
    }
  });

  it('drops the windows that have ended before any that is still counting', () => {
    const rl = new RateLimiter(1_000, 10);
    for (let i = 0; i < 5; i++) rl.hit(`ended-${i}`, 1, 0); // over by t = 1,000
    for (let i = 0; i < 5; i++) rl.hit(`busy-${i}`, 1, 900); // at their limit until t = 1,900
    rl.hit('new', 1, 1_500);
    expect(rl.size).toBe(6);
    for (let i = 0; i < 5; i++) expect(rl.check(`busy-${i}`, 1, 1_500).allowed).toBe(false);
  });

  it('when every window is still counting, drops the oldest tenth at once; the rest stay refused', () => {
    const rl = new RateLimiter(60_000, 100);
    for (let i = 0; i < 100; i++) rl.hit(`client-${i}`, 1, i); // each at its limit
    rl.hit('new', 1, 100);
    expect(rl.size).toBe(91);
    const allowedAgain = Array.from({ length: 100 }, (_, i) => i).filter((i) => rl.check(`client-${i}`, 1, 101).allowed);
    expect(allowedAgain).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rl.check('new', 1, 101).allowed).toBe(false);
  });
});

// The hub's own id generators: version 4 (request ids) and version 7 (invocation record ids)
// UUIDs served from one buffer of 256 at a time, so the properties must hold across batch
// boundaries and with both drawn in turn.
import { describe, expect, it } from 'vitest';
import { randomUuid, timeOrderedUuid } from '../src/utils/random-uuid.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('randomUuid', () => {
  const ids = Array.from({ length: 1000 }, () => randomUuid());

  it('gives version 4, variant 10xx UUIDs in lower-case hex, as crypto.randomUUID does', () => {
    for (const id of ids) expect(id).toMatch(V4);
  });

  it('never repeats an id, within a batch or across batches', () => {
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('draws every free position at random (no position stuck across batches)', () => {
    for (let position = 0; position < 36; position++) {
      const seen = new Set(ids.map((id) => id[position]));
      if ([8, 13, 18, 23].includes(position)) expect(seen).toEqual(new Set(['-']));
      else if (position === 14) expect(seen).toEqual(new Set(['4']));
      else if (position === 19) expect(seen).toEqual(new Set(['8', '9', 'a', 'b']));
      else expect(seen.size).toBe(16); // 1000 draws of 16 values: a missing one has odds ~1e-27
    }
  });
});

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const millisOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe('timeOrderedUuid', () => {
  it('gives version 7, variant 10xx UUIDs whose first 48 bits are the given Unix milliseconds', () => {
    // Times that need all 48 bits, and the edges of the 32-bit halves the generator writes apart
    for (const ms of [0, 1, 0xffff_ffff, 0x1_0000_0000, Date.UTC(2026, 10, 27, 5, 6, 7, 891), 2 ** 48 - 1]) {
      const id = timeOrderedUuid(ms);
      expect(id).toMatch(V7);
      expect(millisOf(id)).toBe(ms);
    }
  });

  it('sorts as text in the order of its time, so new records land at the end of the id index', () => {
    const start = Date.UTC(2026, 10, 27);
    const ids = Array.from({ length: 600 }, (_, i) => timeOrderedUuid(start + i * 997));
    expect([...ids].sort()).toEqual(ids);
  });

  it('takes the current time by default and never repeats within one millisecond', () => {
    const before = Date.now();
    const ids = Array.from({ length: 1000 }, () => timeOrderedUuid());
    const after = Date.now();
    for (const id of ids) {
      expect(id).toMatch(V7);
      expect(millisOf(id)).toBeGreaterThanOrEqual(before);
      expect(millisOf(id)).toBeLessThanOrEqual(after);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(Array.from({ length: 500 }, () => timeOrderedUuid(before))).size).toBe(500);
  });

  it('draws every position after the time at random (no position stuck across batches)', () => {
    const ids = Array.from({ length: 1000 }, () => timeOrderedUuid(Date.UTC(2026, 10, 27)));
    for (let position = 13; position < 36; position++) {
      const seen = new Set(ids.map((id) => id[position]));
      if ([13, 18, 23].includes(position)) expect(seen).toEqual(new Set(['-']));
      else if (position === 14) expect(seen).toEqual(new Set(['7']));
      else if (position === 19) expect(seen).toEqual(new Set(['8', '9', 'a', 'b']));
      else expect(seen.size).toBe(16);
    }
  });

  it('leaves the version 4 ids drawn around it untouched', () => {
    const mixed = Array.from({ length: 600 }, (_, i) => (i % 2 ? timeOrderedUuid() : randomUuid()));
    mixed.forEach((id, i) => expect(id).toMatch(i % 2 ? V7 : V4));
  });
});

// The hub's own id generator: version 4 UUIDs served from batches of 256, so the properties must
// hold across batch boundaries.
import { describe, expect, it } from 'vitest';
import { randomUuid } from '../src/utils/random-uuid.js';

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

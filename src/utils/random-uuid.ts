// Version 4 UUIDs (request ids, invocation record ids) as flat strings, a batch at a time.
// crypto.randomUUID() builds each id from 20 string pieces: ~600 bytes of garbage per id, and the
// ids that wait in the audit queue survive a young-generation collection as those pieces. Two ids
// per invoke field made it the largest single source of promoted memory on the hot path. Here one
// randomFillSync and one pass writing ASCII serve 256 ids; each id is one 36-byte string.
import { randomFillSync } from 'node:crypto';

const BATCH = 256;
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const DASH = 0x2d;
const random = Buffer.allocUnsafe(16 * BATCH);
const text = Buffer.allocUnsafe(36 * BATCH);
let next = BATCH;

function refill() {
  randomFillSync(random);
  let t = 0;
  for (let r = 0; r < random.length; r += 16) {
    random[r + 6] = (random[r + 6]! & 0x0f) | 0x40; // version 4
    random[r + 8] = (random[r + 8]! & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) text[t++] = DASH;
      const b = random[r + i]!;
      text[t++] = HEX[b >> 4]!;
      text[t++] = HEX[b & 15]!;
    }
  }
  next = 0;
}

/** A random (version 4) UUID in lower-case hex, as crypto.randomUUID() formats it. */
export function randomUuid(): string {
  if (next === BATCH) refill();
  const start = 36 * next++;
  return text.toString('latin1', start, start + 36);
}

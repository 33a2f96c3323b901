// Version 4 UUIDs (request ids) and version 7 UUIDs (invocation record ids) as flat strings, a
// batch at a time.
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

/** The offset in `text` of the next unused id, refilling the batch when it is used up. */
function takeSlot(): number {
  if (next === BATCH) refill();
  return 36 * next++;
}

/** A random (version 4) UUID in lower-case hex, as crypto.randomUUID() formats it. */
export function randomUuid(): string {
  const start = takeSlot();
  return text.toString('latin1', start, start + 36);
}

// Hex positions of the 48-bit millisecond timestamp in the text form: xxxxxxxx-xxxx-7...
const TIME_POSITIONS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12];

/**
 * A time-ordered (version 7, RFC 9562) UUID: the Unix time in milliseconds, then 74 random bits.
 * Invocation records are keyed by it (a row of records by its first record's id): a unique B-tree
 * index on random ids inserts each new row at a random leaf, and once the index outgrows the
 * buffer pool nearly every insert reads and dirties a page of its own; ids that grow with time all
 * land on the rightmost leaves (PGlite, the audit writer's INSERT from 100,000 to 400,000 records,
 * a row each: 44-65 against 34-40 microseconds per record).
 * Times outside 0 to 2^48 - 1 ms wrap modulo 2^48 (the year 10889); Date.now() is inside.
 */
export function timeOrderedUuid(now: number = Date.now()): string {
  const start = takeSlot();
  // 48 bits do not fit a 32-bit integer: the high 16 and the low 32 are written separately.
  let high = Math.floor(now / 0x1_0000_0000);
  let low = now >>> 0;
  for (let i = 11; i >= 4; i--, low >>>= 4) text[start + TIME_POSITIONS[i]!] = HEX[low & 15]!;
  for (let i = 3; i >= 0; i--, high >>>= 4) text[start + TIME_POSITIONS[i]!] = HEX[high & 15]!;
  text[start + 14] = 0x37; // version 7 (variant bits are already 10xx)
  return text.toString('latin1', start, start + 36);
}

// Random hex ids (trace and span ids) drawn from a pooled buffer: one randomFillSync per 4 KiB
// instead of one per id, which showed in the hot path's profile.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.allocUnsafe(4096);
let offset = pool.length;

/** bytes random bytes as lower-case hex; never all zeros (W3C Trace Context forbids that id). */
export function randomHex(bytes: number): string {
  for (;;) {
    if (offset + bytes > pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    const hex = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    if (!/^0+$/.test(hex)) return hex;
  }
}

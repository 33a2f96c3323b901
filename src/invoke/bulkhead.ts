// A cap on concurrent calls per called deployment (origin), with a fast refusal past it: one
// hanging system can hold at most this many of the hub's sockets and response buffers, and every
// other deployment keeps its share.
import { HubError } from '../errors.js';

export class Bulkhead {
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly maxPerOrigin: number) {}

  /** Takes a slot or throws CIRCUIT_OPEN (reason CONCURRENCY_LIMIT); call the returned function once done. */
  enter(origin: string): () => void {
    const n = this.inFlight.get(origin) ?? 0;
    if (n >= this.maxPerOrigin) {
      throw new HubError('CIRCUIT_OPEN', `The called deployment already has ${this.maxPerOrigin} calls in flight; retry later.`, {
        reason: 'CONCURRENCY_LIMIT',
        retryAfterMs: 100,
      });
    }
    this.inFlight.set(origin, n + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const m = (this.inFlight.get(origin) ?? 1) - 1;
      if (m <= 0) this.inFlight.delete(origin);
      else this.inFlight.set(origin, m);
    };
  }

  /** calls in flight per origin (for /metrics) */
  entries(): [string, number][] {
    return [...this.inFlight.entries()];
  }
}

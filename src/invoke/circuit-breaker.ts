// One circuit breaker per called deployment (origin): consecutive failures open it, calls are then
// refused with CIRCUIT_OPEN without touching the deployment, and after openMs one probe call is let
// through (half-open): its success closes the breaker, its failure opens it again.
import { HubError } from '../errors.js';

export interface CircuitBreakerOptions {
  /** consecutive failures that open the breaker */
  failureThreshold: number;
  /** how long an open breaker refuses calls before letting one probe through */
  openMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

interface Breaker {
  state: BreakerState;
  failures: number;
  openedAt: number;
  probing: boolean;
}

/** What acquire() hands out: report how the exchange went, exactly once. */
export interface BreakerPass {
  success(): void;
  failure(): void;
}

export class CircuitBreakers {
  private readonly breakers = new Map<string, Breaker>();

  constructor(
    private readonly opts: CircuitBreakerOptions,
    private readonly onChange: (origin: string, state: BreakerState) => void = () => {},
  ) {}

  state(origin: string, now = Date.now()): BreakerState {
    const b = this.breakers.get(origin);
    if (!b) return 'closed';
    if (b.state === 'open' && now - b.openedAt >= this.opts.openMs) return 'half_open';
    return b.state;
  }

  /** Lets one exchange through, or throws CIRCUIT_OPEN. */
  acquire(origin: string, now = Date.now()): BreakerPass {
    const b = this.breakers.get(origin);
    let probe = false;
    if (b && b.state !== 'closed') {
      const waited = now - b.openedAt;
      if (b.state === 'open' && waited < this.opts.openMs) throw open(this.opts.openMs - waited);
      // Half-open: exactly one probe at a time.
      if (b.probing) throw open(this.opts.openMs);
      b.probing = true;
      probe = true;
      this.set(origin, b, 'half_open');
    }
    let reported = false;
    return {
      success: () => {
        if (reported) return;
        reported = true;
        const cur = this.breakers.get(origin);
        if (!cur) return;
        if (probe || cur.state === 'closed') {
          // A closed breaker with no failures is forgotten: the map holds only troubled origins.
          this.breakers.delete(origin);
          if (cur.state !== 'closed') this.onChange(origin, 'closed');
        }
      },
      failure: () => {
        if (reported) return;
        reported = true;
        const cur = this.breakers.get(origin) ?? { state: 'closed' as BreakerState, failures: 0, openedAt: 0, probing: false };
        this.breakers.set(origin, cur);
        if (probe) cur.probing = false;
        cur.failures++;
        if (probe || (cur.state === 'closed' && cur.failures >= this.opts.failureThreshold)) {
          cur.openedAt = Date.now();
          this.set(origin, cur, 'open');
        }
      },
    };
  }

  /** Origins whose breaker is not closed, with their state (for /metrics). */
  troubled(now = Date.now()): [string, BreakerState][] {
    return [...this.breakers.keys()].map((o) => [o, this.state(o, now)] as [string, BreakerState]).filter(([, s]) => s !== 'closed');
  }

  private set(origin: string, b: Breaker, state: BreakerState) {
    if (b.state === state) return;
    b.state = state;
    this.onChange(origin, state);
  }
}

function open(retryAfterMs: number) {
  return new HubError('CIRCUIT_OPEN', 'The called deployment is failing; calls to it are paused. Retry later.', {
    retryAfterMs: Math.max(0, Math.round(retryAfterMs)),
  });
}

// When a call to a called system may be sent again, and after how long. Only calls that are safe
// to repeat (GET, HEAD, or carrying an idempotency key) are retried, only after failures that a
// repeat can cure, and never past the call's deadline.

export interface RetryPolicyOptions {
  /** retries after the first attempt (0 turns retrying off) */
  maxRetries: number;
  /** the first backoff's upper bound; each retry doubles it (full jitter) */
  baseDelayMs: number;
  /** no backoff is longer than this */
  maxDelayMs: number;
}

/** Statuses that say "try again": overloaded, or a gateway in front of the system failed. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

export type AttemptOutcome = { status: number; retryAfter?: string | string[] } | { error: { code: string } };

export class RetryPolicy {
  constructor(
    private readonly opts: RetryPolicyOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * How long to wait before retry number `retry` (1-based), or null when the outcome stands.
   * @param remainingMs time left until the call's deadline
   */
  delayBefore(retry: number, outcome: AttemptOutcome, remainingMs: number, now = Date.now()): number | null {
    if (retry > this.opts.maxRetries) return null;
    let delay: number;
    if ('error' in outcome) {
      // A refused or dropped connection: the request may not have been processed, and the method
      // is safe to repeat. A timeout has used the deadline; a too-large answer would be again.
      if (outcome.error.code !== 'UPSTREAM_UNREACHABLE') return null;
      delay = this.backoff(retry);
    } else {
      if (!RETRYABLE_STATUS.has(outcome.status)) return null;
      const asked = parseRetryAfter(outcome.retryAfter, now);
      delay = asked ?? this.backoff(retry);
    }
    // The retry must have time to be answered: leave it at least a tenth of what remains.
    return delay + Math.max(10, remainingMs * 0.1) < remainingMs ? delay : null;
  }

  private backoff(retry: number): number {
    const ceiling = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (retry - 1));
    return Math.round(this.random() * ceiling);
  }
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 10.2.3), in ms; undefined if absent or invalid. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const trimmed = v.trim();
  if (/^\d{1,9}$/.test(trimmed)) return Number(trimmed) * 1000;
  // HTTP dates start with the day's name (IMF-fixdate, RFC 850 and asctime forms alike).
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

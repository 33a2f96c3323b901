// One exchange with a called deployment, made resilient: a bulkhead slot, the deployment's circuit
// breaker, and retries (safe calls only) with jittered backoff or the server's Retry-After, all
// inside the call's deadline. Every HTTP attempt still goes through the one UpstreamClient.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { HubError } from '../errors.js';
import type { Bulkhead } from './bulkhead.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import type { RetryPolicy } from './retry-policy.js';
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from './upstream-client.js';

export interface ExchangeDeps {
  client: UpstreamClient;
  breakers: CircuitBreakers;
  bulkhead: Bulkhead;
  retry: RetryPolicy;
  /** seconds of each HTTP attempt, and whether it was a retry */
  onAttempt?: (seconds: number, retry: boolean) => void;
}

/** Answers that count against the deployment's breaker: it is failing, not the call. */
const failingStatus = (status: number) => status >= 500 && status !== 501;
const failingError = (error: unknown) => error instanceof HubError && (error.code === 'UPSTREAM_UNREACHABLE' || error.code === 'UPSTREAM_TIMEOUT') && !deniedByPolicy(error);
/** The hub's own outbound policy refused the address: nothing reached the deployment, and a retry would be refused again. */
const deniedByPolicy = (error: unknown) => error instanceof HubError && error.cause === 'HUB_OUTBOUND_DENIED';

export class UpstreamExchange {
  constructor(private readonly deps: ExchangeDeps) {}

  /**
   * @param retryable the call may be sent more than once (GET, HEAD, or an idempotency key)
   * @param deadline performance.now() by which everything, retries included, must be done
   */
  async send(req: UpstreamRequest, opts: { retryable: boolean; deadline: number }): Promise<UpstreamResponse> {
    const { breakers, bulkhead, retry, client } = this.deps;
    const leave = bulkhead.enter(req.origin);
    // The latest attempt's outcome: an answer, or the error it ended with.
    let response: UpstreamResponse | undefined;
    let error: unknown;
    const outcome = (): UpstreamResponse => {
      if (response) return response;
      throw error;
    };
    try {
      for (let attempt = 0; ; attempt++) {
        // Time spent before the exchange (a token request) may have used the deadline: send nothing
        // then, and do not count it against the deployment.
        if (opts.deadline - performance.now() <= 0) {
          if (attempt === 0) throw new HubError('UPSTREAM_TIMEOUT', `The called system did not answer within ${req.timeoutMs} ms.`);
          return outcome();
        }
        let pass;
        try {
          pass = breakers.acquire(req.origin);
        } catch (open) {
          if (attempt === 0) throw open;
          return outcome(); // the breaker opened while this call was retrying: the last outcome stands
        }
        response = undefined;
        error = undefined;
        const started = performance.now();
        try {
          response = await client.send({ ...req, deadline: opts.deadline });
          if (failingStatus(response.status)) pass.failure();
          else pass.success();
        } catch (caught) {
          error = caught;
          if (failingError(caught)) pass.failure();
          else pass.success();
        }
        this.deps.onAttempt?.((performance.now() - started) / 1000, attempt > 0);
        if (!opts.retryable || deniedByPolicy(error)) return outcome();
        const seen = response ? { status: response.status, retryAfter: response.headers['retry-after'] } : { error: { code: error instanceof HubError ? error.code : '' } };
        const delay = retry.delayBefore(attempt + 1, seen, opts.deadline - performance.now());
        if (delay === null) return outcome();
        await sleep(delay);
      }
    } finally {
      leave();
    }
  }
}

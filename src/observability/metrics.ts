// Prometheus metrics of one hub process. Tenant and system labels appear only on invocations whose
// binding exists (unknown ids from callers are labelled ''), so label sets are bounded by the registry.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Bulkhead } from '../invoke/bulkhead.js';
import type { BreakerState, CircuitBreakers } from '../invoke/circuit-breaker.js';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class HubMetrics {
  readonly registry = new Registry();
  readonly dbQueries = new Counter({ name: 'hub_db_queries_total', help: 'SQL statements sent to the hub database', registers: [this.registry] });
  readonly upstreamRequests = new Counter({ name: 'hub_upstream_requests_total', help: 'HTTP requests sent to called systems (a batch counts once)', registers: [this.registry] });
  readonly fastPath = new Counter({
    name: 'hub_fast_path_requests_total',
    help: 'POST /graphql requests the invoke fast path took: planned (run on the operation\'s compiled plan), served (otherwise answered there), or yoga (handed to yoga once their body was read: not an invoke-only document)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  // Counted here per tenant, system and outcome, and handed to prom-client at each scrape: its
  // inc() builds a label hash string and validates the labels on every call, which a document of
  // ten invoke fields paid ten times. Nested maps find the count with the strings the call has;
  // a scrape pays one inc() per series instead, as it pays one line per series anyway.
  private readonly invocationCounts = new Map<string, Map<string, Map<string, number>>>();
  readonly invocations = new Counter({
    name: 'hub_invocations_total',
    help: 'invoke fields by tenant, system and outcome: ok (an upstream answer, any status) or the error code',
    labelNames: ['tenant', 'system', 'outcome'] as const,
    registers: [this.registry],
    collect: () => {
      this.invocations.reset();
      for (const [tenant, bySystem] of this.invocationCounts) {
        for (const [system, byOutcome] of bySystem) for (const [outcome, n] of byOutcome) this.invocations.inc({ tenant, system, outcome }, n);
      }
    },
  });

  /** One invoke field ended: outcome is 'ok' or its error code; tenant and system '' when unknown. */
  countInvocation(tenant: string, system: string, outcome: string): void {
    let bySystem = this.invocationCounts.get(tenant);
    if (!bySystem) this.invocationCounts.set(tenant, (bySystem = new Map()));
    let byOutcome = bySystem.get(system);
    if (!byOutcome) bySystem.set(system, (byOutcome = new Map()));
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  }

  readonly tokenRefreshes = new Counter({
    name: 'hub_token_refreshes_total',
    help: 'requests to OAuth2 token endpoints by outcome: ok or failed',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly invokeDuration = new Histogram({
    name: 'hub_invoke_duration_seconds',
    help: 'time of one invoke field in the hub, upstream call included',
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'hub_upstream_duration_seconds',
    help: 'time of one HTTP exchange with a called system (each retry counts once)',
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly limiterFallbacks = new Counter({
    name: 'hub_limiter_fallbacks_total',
    help: 'limit verdicts taken in this process because Redis (HUB_REDIS_URL) did not answer, by limiter: quota or auth',
    labelNames: ['limiter'] as const,
    registers: [this.registry],
  });
  readonly upstreamRetries = new Counter({ name: 'hub_upstream_retries_total', help: 'HTTP requests sent again after a retryable failure', registers: [this.registry] });

  readonly auditRefusals = new Counter({
    name: 'hub_audit_refusals_total',
    help: 'invoke fields refused (SERVICE_UNAVAILABLE, nothing sent) because the audit buffer was full',
    registers: [this.registry],
  });

  constructor(sources: {
    cache: { size: number; stats: { hits: number; misses: number; staleServed: number } };
    audit: { pending: number; stats: { unbuffered: number } };
  }) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'hub_registry_cache_entries', help: 'entries in the registry cache', registers: [this.registry], collect() { this.set(sources.cache.size); } });
    new Gauge({ name: 'hub_registry_cache_hits', help: 'registry cache hits since start', registers: [this.registry], collect() { this.set(sources.cache.stats.hits); } });
    new Gauge({ name: 'hub_registry_cache_misses', help: 'registry cache misses since start', registers: [this.registry], collect() { this.set(sources.cache.stats.misses); } });
    new Gauge({ name: 'hub_audit_buffer_depth', help: 'invocation records waiting to be written', registers: [this.registry], collect() { this.set(sources.audit.pending); } });
    new Gauge({ name: 'hub_registry_cache_stale_served', help: 'expired registry entries served because the database was unreachable, since start', registers: [this.registry], collect() { this.set(sources.cache.stats.staleServed); } });
    new Gauge({ name: 'hub_audit_records_unbuffered', help: 'invocation records that did not fit the full audit buffer and went to the error log instead, since start', registers: [this.registry], collect() { this.set(sources.audit.stats.unbuffered); } });
  }

  /** Breaker states and in-flight calls per called origin, read at each scrape. */
  watchDeployments(breakers: CircuitBreakers, bulkhead: Bulkhead): void {
    new Gauge({
      name: 'hub_circuit_breaker_state',
      help: 'circuit breaker per called origin: 0 closed, 1 half-open, 2 open (closed origins are not listed)',
      labelNames: ['origin'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [origin, state] of breakers.troubled()) this.set({ origin }, BREAKER_VALUE[state]);
      },
    });
    new Gauge({
      name: 'hub_upstream_in_flight',
      help: 'calls in flight per called origin (the bulkhead caps it at HUB_MAX_CONCURRENT_PER_DEPLOYMENT)',
      labelNames: ['origin'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [origin, n] of bulkhead.entries()) this.set({ origin }, n);
      },
    });
  }
}

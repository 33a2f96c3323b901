// Prometheus metrics of one hub process. Labels stay low-cardinality (outcome codes only), so the
// scrape stays small however many tenants the registry holds.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class HubMetrics {
  readonly registry = new Registry();
  readonly dbQueries = new Counter({ name: 'hub_db_queries_total', help: 'SQL statements sent to the hub database', registers: [this.registry] });
  readonly upstreamRequests = new Counter({ name: 'hub_upstream_requests_total', help: 'HTTP requests sent to called systems (a batch counts once)', registers: [this.registry] });
  readonly invocations = new Counter({
    name: 'hub_invocations_total',
    help: 'invoke fields by outcome: ok (an upstream answer, any status) or the error code',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly tokenRefreshes = new Counter({
    name: 'hub_token_refreshes_total',
    help: 'requests to OAuth2 token endpoints by outcome: ok or failed',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly invokeDuration = new Histogram({
    name: 'hub_invoke_duration_seconds',
    help: 'time of one invoke field in the hub, upstream call included',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor(sources: { cache: { size: number; stats: { hits: number; misses: number } }; audit: { pending: number } }) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'hub_registry_cache_entries', help: 'entries in the registry cache', registers: [this.registry], collect() { this.set(sources.cache.size); } });
    new Gauge({ name: 'hub_registry_cache_hits', help: 'registry cache hits since start', registers: [this.registry], collect() { this.set(sources.cache.stats.hits); } });
    new Gauge({ name: 'hub_registry_cache_misses', help: 'registry cache misses since start', registers: [this.registry], collect() { this.set(sources.cache.stats.misses); } });
    new Gauge({ name: 'hub_audit_buffer_depth', help: 'invocation records waiting to be written', registers: [this.registry], collect() { this.set(sources.audit.pending); } });
  }
}

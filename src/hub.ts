// Wires the hub together: database, migrations, admin bootstrap, services, the Yoga app and the
// HTTP listener. main.ts calls it with the parsed environment; tests call it with port 0.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { Authenticator } from './access/authenticator.js';
import { bootstrapAdmin } from './access/bootstrap-admin.js';
import { createApp } from './app.js';
import { AuditLog } from './audit/audit-log.js';
import { PostgresChainWriter, PgliteChainWriter } from './audit/chain-writer.js';
import type { HubConfig } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { IdempotencyStore } from './invoke/idempotency-store.js';
import { InvokeService } from './invoke/invoke-service.js';
import { OAuth2Tokens } from './invoke/oauth2-tokens.js';
import { OutboundPolicy } from './invoke/outbound-policy.js';
import { UpstreamClient } from './invoke/upstream-client.js';
import { UpstreamExchange } from './invoke/exchange.js';
import { CircuitBreakers } from './invoke/circuit-breaker.js';
import { Bulkhead } from './invoke/bulkhead.js';
import { RetryPolicy } from './invoke/retry-policy.js';
import { createLogger, type LogSink, type Logger } from './log.js';
import { loadOrCreateKeyFile } from './secrets/key-file.js';
import { SecretBox } from './secrets/secret-box.js';
import { RegistryCache } from './registry/registry-cache.js';
import { noChangeFeed, PostgresChangeFeed, type ChangeFeed } from './registry/change-feed.js';
import { HubMetrics } from './observability/metrics.js';
import { closeRedis, connectRedis } from './access/redis-connection.js';
import { fallbackReporter, RedisLimiter } from './access/redis-limiter.js';
import type { Limiter } from './access/rate-limiter.js';
import type { Redis } from 'ioredis';

export interface HubOptions {
  /** where log lines go (default stdout) */
  logSink?: LogSink;
  /** an already open PGlite (tests: in-memory clones) instead of the data directory */
  pglite?: PGlite;
}

export interface Hub {
  url: string;
  port: number;
  db: Database;
  audit: AuditLog;
  cache: RegistryCache;
  log: Logger;
  /** a newly generated admin key on a first start, else null */
  generatedAdminKey: string | null;
  /** Drains: stop accepting, finish in-flight calls, flush the audit, close the database. */
  close(): Promise<void>;
}

export async function startHub(config: HubConfig, opts: HubOptions = {}): Promise<Hub> {
  const log = createLogger(config.logLevel, opts.logSink);
  const started = Date.now();
  const policy = new OutboundPolicy(config.outboundDeny);
  const key = config.encryptionKey ?? (await loadOrCreateKeyFile(config.dataDir));
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, pgliteBuffersMb: config.pgliteBuffersMb, connectTimeoutMs: config.dbConnectTimeoutMs, log: log.child('db'), pglite: opts.pglite });
  let draining = false;
  let migrated = false;
  let changeFeed: ChangeFeed = noChangeFeed;
  let redis: Redis | undefined;
  try {
    await db.migrate();
    migrated = true;
    const admin = await bootstrapAdmin(db.prisma, config.adminKey, log.child('access'));
    const generatedAdminKey = admin.generatedKey;
    const box = new SecretBox(key, config.previousEncryptionKeys);
    const cache = new RegistryCache(config.cache);
    if (db.kind === 'postgres') {
      changeFeed = await PostgresChangeFeed.start({ url: config.databaseUrl!, prisma: db.prisma, log: log.child('registry'), onChange: () => cache.invalidate() });
      // A replaced HUB_ADMIN_KEY: the other processes must stop accepting the old one now.
      if (admin.changed) await changeFeed.publish().catch((error: unknown) => log.warn('could not announce the new admin key to other hub processes', { error }));
    }
    // Every SQL statement counts, Prisma's and the audit writers' (metrics reads the audit log, so comes after it).
    const countStatement = () => metrics.dbQueries.inc();
    const writer =
      db.kind === 'postgres'
        ? new PostgresChainWriter(config.databaseUrl!, config.dbConnectTimeoutMs, countStatement)
        : new PgliteChainWriter(db.pglite!, countStatement);
    const audit = new AuditLog(writer, log.child('audit'), {
      maxBuffered: config.auditBufferMax,
      // PGlite runs on the hub's own thread: fewer, larger audit batches take less of it (records
      // are written within 100 ms; shutdown and every admin read of records flush first).
      flushDelayMs: db.kind === 'pglite' ? 100 : undefined,
    });
    const metrics = new HubMetrics({ cache, audit });
    db.onQuery(countStatement);
    const client = new UpstreamClient({
      policy,
      maxResponseBytes: config.maxResponseBytes,
      log: log.child('upstream'),
      onSend: () => metrics.upstreamRequests.inc(),
      // Sockets are never the limit: the bulkhead refuses first.
      connectionsPerOrigin: config.resilience.maxConcurrentPerDeployment,
    });
    const breakerLog = log.child('breaker');
    const breakers = new CircuitBreakers(config.resilience.breaker, (origin, state) => {
      breakerLog[state === 'open' ? 'warn' : 'info']('circuit breaker state changed', { origin, state });
    });
    const bulkhead = new Bulkhead(config.resilience.maxConcurrentPerDeployment);
    metrics.watchDeployments(breakers, bulkhead);
    const exchange = new UpstreamExchange({
      client,
      breakers,
      bulkhead,
      retry: new RetryPolicy(config.resilience.retry),
      onAttempt: (seconds, retry) => {
        metrics.upstreamDuration.observe(seconds);
        if (retry) metrics.upstreamRetries.inc();
      },
    });
    // Quotas and the failed-authentication throttle: shared by all hub processes through Redis when
    // HUB_REDIS_URL is set, else (and while Redis does not answer) counted per process.
    let limiters: { quota?: Limiter; auth?: Limiter } = {};
    if (config.redis.url) {
      const limitsLog = log.child('limits');
      const connection = (redis = await connectRedis({ url: config.redis.url, commandTimeoutMs: config.redis.commandTimeoutMs, log: limitsLog }));
      const onFallback = fallbackReporter(limitsLog, (limiter) => metrics.limiterFallbacks.inc({ limiter }));
      const shared = (name: string) => new RedisLimiter(connection, { name, prefix: config.redis.prefix, windowMs: 60_000, onFallback });
      limiters = { quota: shared('quota'), auth: shared('auth') };
    }
    const idempotency = new IdempotencyStore({ prisma: db.prisma, box, log: log.child('idempotency'), ttlMs: config.idempotencyTtlMs });
    const tokens = new OAuth2Tokens({ prisma: db.prisma, kind: db.kind, box, client, log: log.child('oauth2'), settings: config.oauth2, metrics, poolSize: config.dbPoolSize });
    const invoker = new InvokeService({ exchange, box, audit, log: log.child('invoke'), quotaPerMinute: config.quotaPerMinute, cache, metrics, idempotency, tokens, quota: limiters.quota });
    const app = createApp({
      services: { prisma: db.prisma, box, invoker, audit, cache },
      authenticator: new Authenticator(db.prisma, log.child('access'), config.authFailuresPerMinute, cache, limiters.auth),
      settings: { graphiql: config.graphiql, introspection: config.introspection, maxRequestBytes: config.maxRequestBytes, limits: config.limits, fastPath: config.fastPath },
      exchange,
      changeFeed,
      log,
      metrics,
      isReady: async () => {
        if (draining || !migrated) return false;
        await db.ping();
        return true;
      },
    });
    const server = createServer(app.requestListener);
    await listen(server, config.port, config.host);
    const port = (server.address() as AddressInfo).port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    log.info('tenant-hub listening', { url: `${url}/graphql`, database: db.kind, startupMs: Date.now() - started });

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        draining = true;
        // Load balancers see /readyz at 503 and stop sending new calls; until they have, serve on.
        if (config.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.drainDelayMs));
        await stopServer(server, config.shutdownTimeoutMs);
        await audit.close().catch((error: unknown) => log.error('invocation records lost at shutdown', { error, pending: audit.pending }));
        await client.close();
        await changeFeed.close();
        if (redis) await closeRedis(redis);
        await db.close();
        log.info('tenant-hub stopped');
      })());
    return { url, port, db, audit, cache, log, generatedAdminKey, close };
  } catch (error) {
    await changeFeed.close();
    if (redis) await closeRedis(redis);
    await db.close().catch(() => {});
    throw error;
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets in-flight requests finish (up to timeoutMs), then closes what is left. */
function stopServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

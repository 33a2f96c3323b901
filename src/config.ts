// The environment is read here once, at start-up, and nowhere else.
// A bad value stops the process with a message that names the variable.
import { z } from 'zod';

const MiB = 1024 * 1024;

const logLevel = z.enum(['debug', 'info', 'warn', 'error']);
const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const positive = z.coerce.number().int().positive();

/** the embedded PGlite's shared_buffers when HUB_PGLITE_BUFFERS_MB is not set */
export const DEFAULT_PGLITE_BUFFERS_MB = 8;

const envSchema = z.object({
  HUB_HOST: z.string().min(1).default('127.0.0.1'),
  HUB_PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  HUB_DATA_DIR: z.string().min(1).default('./.hub-data'),
  HUB_ADMIN_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  HUB_ENCRYPTION_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  HUB_LOG_LEVEL: logLevel.default('info'),
  HUB_MAX_RESPONSE_BYTES: z.coerce.number().int().positive().default(10 * MiB),
  HUB_OUTBOUND_DENY: z.string().default('169.254.0.0/16,fe80::/10,fd00:ec2::254/128'),
  HUB_DB_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),
  HUB_DB_CONNECT_TIMEOUT_MS: positive.default(5000),
  HUB_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(15_000),
  HUB_DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(0),
  NODE_ENV: z.string().optional(),
  HUB_GRAPHIQL: flag.optional(),
  HUB_INTROSPECTION: flag.optional(),
  HUB_FAST_PATH: flag.default('true'),
  HUB_HEAP_GROWTH_PERCENT: z.coerce.number().int().min(0).max(300).default(50),
  HUB_PGLITE_BASELINE_WASM: flag.default('true'),
  HUB_PGLITE_BUFFERS_MB: z.coerce.number().int().min(1).max(4096).default(DEFAULT_PGLITE_BUFFERS_MB),
  HUB_MAX_REQUEST_BYTES: positive.default(1024 * 1024),
  HUB_MAX_DEPTH: positive.default(12),
  HUB_MAX_ALIASES: positive.default(30),
  HUB_MAX_INVOKES: positive.default(50),
  HUB_MAX_TOKENS: positive.default(2000),
  HUB_QUOTA_PER_MINUTE: positive.default(1200),
  HUB_AUTH_FAILURES_PER_MINUTE: positive.default(20),
  HUB_ENCRYPTION_PREVIOUS_KEYS: z.string().optional(),
  HUB_CACHE_ENTRIES: z.coerce.number().int().min(0).default(50_000),
  HUB_CACHE_TTL_MS: z.coerce.number().int().min(0).default(10_000),
  HUB_RETRY_MAX: z.coerce.number().int().min(0).max(10).default(2),
  HUB_RETRY_BASE_MS: positive.default(100),
  HUB_RETRY_MAX_DELAY_MS: positive.default(2_000),
  HUB_BREAKER_FAILURES: positive.default(5),
  HUB_BREAKER_OPEN_MS: positive.default(30_000),
  HUB_MAX_CONCURRENT_PER_DEPLOYMENT: positive.default(1024),
  HUB_IDEMPOTENCY_TTL_MS: positive.default(24 * 60 * 60 * 1000),
  HUB_CACHE_STALE_MS: z.coerce.number().int().min(0).default(3_600_000),
  HUB_AUDIT_BUFFER_MAX: positive.default(100_000),
  HUB_OAUTH_REFRESH_SKEW_MS: z.coerce.number().int().min(0).default(60_000),
  HUB_OAUTH_COOLDOWN_MS: z.coerce.number().int().min(0).default(1_000),
  HUB_OAUTH_COOLDOWN_MAX_MS: z.coerce.number().int().min(0).default(60_000),
  HUB_OAUTH_DEFAULT_EXPIRES_IN: positive.default(3600),
  HUB_REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  HUB_REDIS_PREFIX: z.string().max(64).default('thub:'),
  HUB_REDIS_TIMEOUT_MS: positive.max(10_000).default(200),
});

export type LogLevel = z.infer<typeof logLevel>;

export interface HubConfig {
  host: string;
  port: number;
  /** undefined: the embedded PGlite database in dataDir */
  databaseUrl: string | undefined;
  dataDir: string;
  adminKey: string | undefined;
  /** 32 raw bytes; undefined: read or create the key file in dataDir (embedded database only) */
  encryptionKey: Buffer | undefined;
  logLevel: LogLevel;
  maxResponseBytes: number;
  outboundDeny: string[];
  dbPoolSize: number;
  /** PostgreSQL: how long opening a connection may take before the database counts as unreachable */
  dbConnectTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** on SIGTERM: how long to keep serving with /readyz at 503 before the listener closes */
  drainDelayMs: number;
  /** NODE_ENV=production: GraphiQL and introspection default to off */
  production: boolean;
  graphiql: boolean;
  introspection: boolean;
  /** invoke-only documents bypass yoga's Fetch adapter (same answers; HUB_FAST_PATH=false turns it off) */
  fastPath: boolean;
  /** the V8 old generation grows to (1 + this/100) x the live heap after a major GC; 0: V8's own heuristics (up to 4x) */
  heapGrowthPercent: number;
  /** the embedded PGlite's WASM compiled by V8's baseline tier only: ~55 MB less RSS, slower database work */
  pgliteBaselineWasm: boolean;
  /** the embedded PGlite's shared_buffers, in MB */
  pgliteBuffersMb: number;
  maxRequestBytes: number;
  limits: { maxDepth: number; maxAliases: number; maxInvokes: number; maxTokens: number };
  /** invokes per caller per minute, unless the caller has its own quota */
  quotaPerMinute: number;
  /** failed authentications per client address per minute before it gets RATE_LIMITED */
  authFailuresPerMinute: number;
  /** older encryption keys, still accepted for opening credentials until they are rotated */
  previousEncryptionKeys: Buffer[];
  /**
   * registry cache: at most this many entries (0 turns it off), each kept at most ttlMs, and
   * served up to staleMs longer while the database is unreachable
   */
  cache: { maxEntries: number; ttlMs: number; staleMs: number };
  /** invocation records waiting for the database beyond which invokes are refused */
  auditBufferMax: number;
  resilience: {
    /** retries of safe calls after a dropped connection, 429, 502, 503 or 504 */
    retry: { maxRetries: number; baseDelayMs: number; maxDelayMs: number };
    /** per called origin: consecutive failures that open it, and how long it stays open */
    breaker: { failureThreshold: number; openMs: number };
    /** calls in flight per called origin before new ones are refused at once */
    maxConcurrentPerDeployment: number;
  };
  /** how long an answer to a call with an idempotencyKey is kept and replayed */
  idempotencyTtlMs: number;
  /** OAuth2 client credentials: see src/invoke/oauth2-tokens.ts */
  oauth2: {
    /** refresh a token this long before it expires (at most half its lifetime) */
    refreshSkewMs: number;
    /** pause after a failed token request: cooldownMs, doubled per consecutive failure, at most cooldownMaxMs */
    cooldownMs: number;
    cooldownMaxMs: number;
    /** lifetime assumed when the token endpoint gives no expires_in, in seconds */
    defaultExpiresInS: number;
  };
  /**
   * Shared limits (invoke quotas, failed-authentication throttle): url undefined keeps them per
   * process. prefix starts every key; commandTimeoutMs bounds each Redis call before the hub falls
   * back to its own counters for that call.
   */
  redis: { url: string | undefined; prefix: string; commandTimeoutMs: number };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseConfig(env: Record<string, string | undefined>): HubConfig {
  // An empty variable means "not set", as in most process managers' env files.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  if (e.DATABASE_URL && !e.HUB_ENCRYPTION_KEY) {
    throw new ConfigError(
      'Invalid configuration:\n  HUB_ENCRYPTION_KEY: required when DATABASE_URL is set (32 bytes, base64; e.g. `openssl rand -base64 32`)',
    );
  }
  const production = e.NODE_ENV === 'production';
  const previous = (e.HUB_ENCRYPTION_PREVIOUS_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  const badPrevious = previous.find((k) => Buffer.from(k, 'base64').length !== 32);
  if (badPrevious !== undefined) throw new ConfigError('Invalid configuration:\n  HUB_ENCRYPTION_PREVIOUS_KEYS: each key must be 32 bytes, base64-encoded');
  return {
    production,
    graphiql: e.HUB_GRAPHIQL ?? !production,
    introspection: e.HUB_INTROSPECTION ?? !production,
    fastPath: e.HUB_FAST_PATH,
    heapGrowthPercent: e.HUB_HEAP_GROWTH_PERCENT,
    pgliteBaselineWasm: e.HUB_PGLITE_BASELINE_WASM,
    pgliteBuffersMb: e.HUB_PGLITE_BUFFERS_MB,
    maxRequestBytes: e.HUB_MAX_REQUEST_BYTES,
    limits: { maxDepth: e.HUB_MAX_DEPTH, maxAliases: e.HUB_MAX_ALIASES, maxInvokes: e.HUB_MAX_INVOKES, maxTokens: e.HUB_MAX_TOKENS },
    quotaPerMinute: e.HUB_QUOTA_PER_MINUTE,
    authFailuresPerMinute: e.HUB_AUTH_FAILURES_PER_MINUTE,
    previousEncryptionKeys: previous.map((k) => Buffer.from(k, 'base64')),
    resilience: {
      retry: { maxRetries: e.HUB_RETRY_MAX, baseDelayMs: e.HUB_RETRY_BASE_MS, maxDelayMs: e.HUB_RETRY_MAX_DELAY_MS },
      breaker: { failureThreshold: e.HUB_BREAKER_FAILURES, openMs: e.HUB_BREAKER_OPEN_MS },
      maxConcurrentPerDeployment: e.HUB_MAX_CONCURRENT_PER_DEPLOYMENT,
    },
    idempotencyTtlMs: e.HUB_IDEMPOTENCY_TTL_MS,
    cache: { maxEntries: e.HUB_CACHE_ENTRIES, ttlMs: e.HUB_CACHE_TTL_MS, staleMs: e.HUB_CACHE_STALE_MS },
    auditBufferMax: e.HUB_AUDIT_BUFFER_MAX,
    oauth2: {
      refreshSkewMs: e.HUB_OAUTH_REFRESH_SKEW_MS,
      cooldownMs: e.HUB_OAUTH_COOLDOWN_MS,
      cooldownMaxMs: Math.max(e.HUB_OAUTH_COOLDOWN_MAX_MS, e.HUB_OAUTH_COOLDOWN_MS),
      defaultExpiresInS: e.HUB_OAUTH_DEFAULT_EXPIRES_IN,
    },
    redis: { url: e.HUB_REDIS_URL, prefix: e.HUB_REDIS_PREFIX, commandTimeoutMs: e.HUB_REDIS_TIMEOUT_MS },
    host: e.HUB_HOST,
    port: e.HUB_PORT,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.HUB_DATA_DIR,
    adminKey: e.HUB_ADMIN_KEY,
    encryptionKey: e.HUB_ENCRYPTION_KEY ? Buffer.from(e.HUB_ENCRYPTION_KEY, 'base64') : undefined,
    logLevel: e.HUB_LOG_LEVEL,
    maxResponseBytes: e.HUB_MAX_RESPONSE_BYTES,
    outboundDeny: e.HUB_OUTBOUND_DENY.split(',').map((s) => s.trim()).filter(Boolean),
    dbPoolSize: e.HUB_DB_POOL_SIZE,
    dbConnectTimeoutMs: e.HUB_DB_CONNECT_TIMEOUT_MS,
    shutdownTimeoutMs: e.HUB_SHUTDOWN_TIMEOUT_MS,
    drainDelayMs: e.HUB_DRAIN_DELAY_MS,
  };
}

// The hub's one Redis connection (HUB_REDIS_URL), used for limits shared by every hub process.
// It is tuned to fail fast rather than wait: a call that cannot be answered within the command
// timeout, or while the connection is down, is refused at once (no offline queue, no retries per
// call) and the limiter falls back to the process's own counters; the connection keeps
// reconnecting in the background.
import { Redis } from 'ioredis';
import type { Logger } from '../log.js';

export interface RedisOptions {
  url: string;
  commandTimeoutMs: number;
  log: Logger;
  /** how long start-up waits for the first connection before going on without it */
  connectWaitMs?: number;
}

const LOG_EVERY_MS = 30_000;

export async function connectRedis({ url, commandTimeoutMs, log, connectWaitMs = 2_000 }: RedisOptions): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1_000),
    // Reconnect forever, backing off to one attempt every 2 s.
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  // Each failed reconnect emits an error: log one line per period, not one per attempt. The URL
  // (which may hold a password) is never logged; ioredis's messages name only host and port.
  let lastLogged = 0;
  let lost = false;
  redis.on('error', (error: Error) => {
    const now = Date.now();
    if (now - lastLogged < LOG_EVERY_MS) return;
    lastLogged = now;
    log.warn('redis connection failed; limits are per process until it is back', { error });
  });
  redis.on('close', () => {
    if (redis.status !== 'end') lost = true;
  });
  redis.on('ready', () => {
    if (lost) log.info('redis connection ready; limits are shared again');
    lost = false;
    lastLogged = 0;
  });
  // Start-up waits a moment for the first connection so the first requests already share limits;
  // an unreachable Redis does not stop the hub from starting.
  let timer: NodeJS.Timeout | undefined;
  const ready = await Promise.race([
    redis.connect().then(
      () => true,
      () => false,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), connectWaitMs))),
  ]);
  clearTimeout(timer);
  log[ready ? 'info' : 'warn'](ready ? 'shared limits in redis' : 'redis not reachable at start-up; limits are per process until it is', {
    host: redis.options.host,
    port: redis.options.port,
    db: redis.options.db,
  });
  return redis;
}

/** Closes the connection: politely when it is up, at once (and no more reconnecting) when not. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    const quit = await redis.quit().then(
      () => true,
      () => false,
    );
    if (quit) return;
  }
  redis.disconnect();
}

// Registry changes across hub processes sharing one PostgreSQL. A process that wrote to the
// registry NOTIFYs; every process LISTENs on its own connection and drops its registry cache when
// another one wrote. A listening connection that breaks may have missed notifications, so the
// cache is dropped once it is back (a full resync); the cache TTL bounds staleness in between.
// The embedded PGlite serves one process only: there the feed does nothing.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Prisma } from '../db/database.js';
import type { Logger } from '../log.js';

export const REGISTRY_CHANNEL = 'tenant_hub_registry';
const PING_MS = 15_000;

export interface ChangeFeed {
  /** Tells the other processes that the registry changed (after the change committed). */
  publish(): Promise<void>;
  close(): Promise<void>;
}

export const noChangeFeed: ChangeFeed = { publish: async () => {}, close: async () => {} };

export interface PostgresChangeFeedOptions {
  url: string;
  prisma: Prisma;
  log: Logger;
  /** the registry changed elsewhere, or notifications may have been missed */
  onChange: () => void;
  /** wait before reconnecting a lost listening connection (default 500 ms, doubling up to 10 s) */
  reconnectMs?: number;
}

export class PostgresChangeFeed implements ChangeFeed {
  /** marks this process's own notifications, which it has acted on already */
  private readonly origin = randomUUID();
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;

  private constructor(private readonly opts: PostgresChangeFeedOptions) {
    this.retryMs = opts.reconnectMs ?? 500;
  }

  /** Starts listening; resolves once the first LISTEN is in place (or failed: it keeps retrying). */
  static async start(opts: PostgresChangeFeedOptions): Promise<PostgresChangeFeed> {
    const feed = new PostgresChangeFeed(opts);
    await feed.connect(false);
    return feed;
  }

  async publish(): Promise<void> {
    await this.opts.prisma.$executeRaw`SELECT pg_notify(${REGISTRY_CHANNEL}, ${this.origin})`;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(resync: boolean): Promise<void> {
    // A connection that dies silently (a NAT or a failover without a reset) must be noticed fast:
    // short TCP keepalives, a connect timeout, and a ping every PING_MS.
    const client = new pg.Client({ connectionString: this.opts.url, keepAlive: true, keepAliveInitialDelayMillis: 5_000, connectionTimeoutMillis: 5_000 });
    client.on('notification', (n) => {
      if (n.channel === REGISTRY_CHANNEL && n.payload !== this.origin) this.opts.onChange();
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${REGISTRY_CHANNEL}`);
    } catch (error) {
      this.lost(client, error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.retryMs = this.opts.reconnectMs ?? 500;
    this.pinger = setInterval(() => {
      const timeout = setTimeout(() => this.lost(client, new Error('registry change feed ping timed out')), PING_MS);
      client.query('SELECT 1').then(
        () => clearTimeout(timeout),
        (error: unknown) => {
          clearTimeout(timeout);
          this.lost(client, error);
        },
      );
    }, PING_MS);
    this.pinger.unref();
    if (resync) {
      this.opts.log.info('registry change feed listening again; registry cache dropped');
      this.opts.onChange();
    }
  }

  private lost(client: pg.Client, error: unknown) {
    if (this.closed || (this.client !== client && this.client !== undefined)) return;
    this.client = undefined;
    clearInterval(this.pinger);
    // Nothing this client does from now on may schedule another reconnect.
    client.removeAllListeners('end');
    client.removeAllListeners('error');
    client.removeAllListeners('notification');
    client.on('error', () => {});
    client.end().catch(() => {});
    if (this.timer) return;
    this.opts.log.warn('registry change feed lost its connection; reconnecting', { error, retryMs: this.retryMs });
    // Changes made meanwhile are not announced to us: the cache is dropped once we listen again.
    // Not now: if the database itself is away, the cache is what keeps known routes working.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect(true);
    }, this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }
}

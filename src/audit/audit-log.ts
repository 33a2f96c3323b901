// Invocation records, written in batches off the request path: record() only queues; a flush
// writes the queue in one transaction, chained to the newest stored record under an advisory lock
// (so processes sharing one PostgreSQL extend one chain). close() flushes what is left.
import type { Prisma } from '../db/database.js';
import type { Logger } from '../log.js';
import { chainHash, GENESIS, type InvocationEntry } from './chain.js';
import { isDatabaseUnavailable } from '../utils/database-errors.js';

const CHAIN_LOCK = 72_470_003;

export interface AuditLogOptions {
  /** how long a record may wait before it is written (default 20 ms) */
  flushDelayMs?: number;
  /** at most this many records per write (default 500) */
  maxBatch?: number;
  /** wait this long before retrying after a failed write (default 1000 ms) */
  retryDelayMs?: number;
}

export class AuditLog {
  private queue: InvocationEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private readonly flushDelayMs: number;
  private readonly maxBatch: number;
  private readonly retryDelayMs: number;

  constructor(
    private readonly prisma: Prisma,
    private readonly log: Logger,
    opts: AuditLogOptions = {},
  ) {
    this.flushDelayMs = opts.flushDelayMs ?? 20;
    this.maxBatch = opts.maxBatch ?? 500;
    this.retryDelayMs = opts.retryDelayMs ?? 1000;
  }

  get pending(): number {
    return this.queue.length;
  }

  record(entry: InvocationEntry): void {
    this.queue.push(entry);
    this.schedule(this.queue.length >= this.maxBatch ? 0 : this.flushDelayMs);
  }

  /** Resolves once everything recorded before the call is stored; rejects if the write failed. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // Writes run one after another, so the chain is extended in order.
    const run = async () => {
      while (this.queue.length) await this.writeBatch();
    };
    const write = (this.writing ?? Promise.resolve()).catch(() => {}).then(run);
    this.writing = write;
    try {
      await write;
    } catch (error) {
      this.schedule(this.retryDelayMs);
      throw error;
    } finally {
      if (this.writing === write) this.writing = undefined;
    }
  }

  private schedule(delay: number) {
    if (this.timer) {
      if (delay > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => {});
    }, delay);
    this.timer.unref();
  }

  private async writeBatch(): Promise<void> {
    const batch = this.queue.slice(0, this.maxBatch);
    try {
      await this.insertChained(batch);
      this.queue.splice(0, batch.length);
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        this.log.error('writing invocation records failed; they stay queued', { error, queued: this.queue.length });
        throw error;
      }
      // A record the database refuses must not hold up every record behind it: write them one by
      // one, and put a refused one in the log (records hold no secrets) instead of the table.
      for (const entry of batch) {
        try {
          await this.insertChained([entry]);
        } catch (single) {
          if (isDatabaseUnavailable(single)) throw single;
          this.log.error('an invocation record was refused by the database; kept here', { error: single, record: entry });
        }
        this.queue.shift();
      }
    }
  }

  private async insertChained(batch: InvocationEntry[]): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${CHAIN_LOCK})`);
      const last = await tx.invocation.findFirst({ orderBy: { seq: 'desc' }, select: { hash: true } });
      let prev = last?.hash ?? GENESIS;
      const rows = batch.map((e) => {
        const hash = chainHash(prev, e);
        const row = { ...e, prevHash: prev, hash };
        prev = hash;
        return row;
      });
      await tx.invocation.createMany({ data: rows });
    });
  }


  /** Stops the timer and writes everything still queued. */
  async close(): Promise<void> {
    await this.flush();
    clearTimeout(this.timer);
  }
}

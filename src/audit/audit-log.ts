// Invocation records, written in batches off the request path: record() only queues; a flush
// writes the queue in one transaction, chained to the newest stored record (on PostgreSQL under an
// advisory lock, so processes sharing the database extend one chain). close() flushes what is left.
//
// While the database is unreachable records stay queued, in order, and are retried; once it is
// back they are written with the chain intact. The queue is bounded: at maxBuffered records `full`
// turns true and the invoke service refuses new calls (records are never dropped to make room).
// Records still arriving then (calls already in flight, the refusals themselves) get a second
// maxBuffered of room; past that a record goes to the error log instead (records hold no
// secrets) and is counted in stats.unbuffered, so memory stays bounded and nothing is lost silently.
import type { Logger } from '../log.js';
import { groupRecords, type InvocationEntry } from './chain.js';
import type { ChainWriter } from './chain-writer.js';
import { isDatabaseTransient } from '../utils/database-errors.js';


export interface AuditLogOptions {
  /** how long a record may wait before it is written (default 20 ms) */
  flushDelayMs?: number;
  /** at most this many records per write (default: the writer's maxBatch) */
  maxBatch?: number;
  /** wait this long before retrying after a failed write (default 1000 ms) */
  retryDelayMs?: number;
  /** queued records at which `full` turns true (default 10,000; the hub sets HUB_AUDIT_BUFFER_MAX); the queue holds at most twice this */
  maxBuffered?: number;
}


export class AuditLog {
  private queue: InvocationEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private readonly flushDelayMs: number;
  private readonly maxBatch: number;
  private readonly retryDelayMs: number;
  readonly maxBuffered: number;
  /** the last write failed because the database is unreachable */
  private failing = false;
  /** records that did not fit the queue and went to the error log instead, since start */
  readonly stats = { unbuffered: 0 };

  /** @param writer how batches reach the database (src/audit/chain-writer.ts) */
  constructor(
    private readonly writer: ChainWriter,
    private readonly log: Logger,
    opts: AuditLogOptions = {},
  ) {
    this.flushDelayMs = opts.flushDelayMs ?? 20;
    this.maxBatch = opts.maxBatch ?? this.writer.maxBatch;
    this.retryDelayMs = opts.retryDelayMs ?? 1000;
    this.maxBuffered = opts.maxBuffered ?? 10_000;
  }

  private closed = false;
  /** records queued since start; those taken off the queue since (written, or refused and logged) are queued - queue.length */
  private queued = 0;

  get pending(): number {
    return this.queue.length;
  }

  /** The queue holds maxBuffered records or more: new calls must be refused until it drains. */
  get full(): boolean {
    return this.queue.length >= this.maxBuffered;
  }

  record(entry: InvocationEntry): void {
    if (this.closed) {
      // A call that outlived the shutdown timeout: its record can no longer be written; keep it here.
      this.stats.unbuffered++;
      this.log.error('invocation record not buffered (audit log closed at shutdown); kept here', { record: entry });
      return;
    }
    if (this.queue.length >= 2 * this.maxBuffered) {
      this.stats.unbuffered++;
      this.log.error('invocation record not buffered (audit buffer full, database unreachable); kept here', { record: entry });
      return;
    }
    this.queue.push(entry);
    this.queued++;
    // A full batch is written at once, unless the database is away: then the retry timer decides.
    this.schedule(this.queue.length >= this.maxBatch && !this.failing ? 0 : this.flushDelayMs);
  }

  /** Resolves once everything recorded before the call is stored; rejects if the write failed. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // Writes run one after another, so the chain is extended in order. A flush writes what was
    // recorded before it was called; records arriving meanwhile wait for their own timer. Writing
    // them at once turned a steady load into back-to-back writes of a few records each (a quarter
    // of the hub's CPU at 800 req/s on PostgreSQL), instead of one batch per flushDelayMs.
    const upTo = this.queued;
    const run = async () => {
      while (this.queued - this.queue.length < upTo) await this.writeBatch();
    };
    const write = (this.writing ?? Promise.resolve()).catch(() => {}).then(run);
    this.writing = write;
    try {
      await write;
      if (this.failing) this.log.info('invocation records are written again', { queued: this.queue.length });
      this.failing = false;
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
    // The same queue head groups the same way on a retry, so a group whose write did commit (its
    // acknowledgement lost) is refused by the first record's unique id instead of stored twice.
    const groups = groupRecords(batch);
    try {
      await this.writer.append(groups);
      this.queue.splice(0, batch.length);
    } catch (error) {
      if (isDatabaseTransient(error)) {
        // Once per outage, not once per retry.
        if (!this.failing) this.log.error('writing invocation records failed; they stay queued and are retried', { error, queued: this.queue.length });
        this.failing = true;
        throw error;
      }
      // A group the database refuses must not hold up every record behind it: write them one by
      // one, and put a refused group's records in the log (records hold no secrets) instead of the table.
      for (const group of groups) {
        try {
          await this.writer.append([group]);
        } catch (single) {
          if (isDatabaseTransient(single)) throw single;
          for (const record of group.records) this.log.error('an invocation record was refused by the database; kept here', { error: single, record });
        }
        this.queue.splice(0, group.records.length);
      }
    }
  }

  /** Stops the timer and writes everything still queued. */
  async close(): Promise<void> {
    try {
      // Calls that ended during a write recorded after its flush began: write until none is left.
      do await this.flush();
      while (this.queue.length);
    } catch (error) {
      // The last chance to keep them: every record still queued goes to the error log.
      for (const record of this.queue) this.log.error('invocation record not written at shutdown; kept here', { record });
      throw error;
    } finally {
      this.closed = true;
      clearTimeout(this.timer);
      await this.writer.close().catch(() => {});
    }
  }
}

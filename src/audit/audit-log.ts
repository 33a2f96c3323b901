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
import { groupRecords, type InvocationEntry, type RecordGroup } from './chain.js';
import type { ChainWriter } from './chain-writer.js';
import { isDatabaseTransient, isUniqueViolation } from '../utils/database-errors.js';


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
  /**
   * Records in the write that failed on the way: its commit may have landed all the same, so the
   * retry sends exactly those records, grouped as before (records that arrived since could join
   * its last group), and a group stored already is refused by its first record's unique id.
   */
  private retrySize: number | undefined;
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
    const batch = this.queue.slice(0, this.retrySize ?? this.maxBatch);
    const groups = groupRecords(batch);
    try {
      await this.writer.append(groups);
      this.queue.splice(0, batch.length);
      this.retrySize = undefined;
    } catch (error) {
      if (isDatabaseTransient(error)) {
        // Once per outage, not once per retry.
        if (!this.failing) this.log.error('writing invocation records failed; they stay queued and are retried', { error, queued: this.queue.length });
        this.failing = true;
        this.retrySize = batch.length;
        throw error;
      }
      // A group the database refuses must not hold up every record behind it: write them group by
      // group, and a refused group record by record.
      for (const group of groups) {
        try {
          await this.writer.append([group]);
          this.queue.splice(0, group.records.length);
        } catch (single) {
          if (isDatabaseTransient(single)) {
            this.retrySize = group.records.length;
            throw single;
          }
          await this.writeAlone(group, single);
        }
      }
      this.retrySize = undefined;
    }
  }

  /**
   * The records of a refused group (the queue's head), each in a row of its own, taken off the
   * queue one by one; one the database refuses too goes to the log (records hold no secrets)
   * instead of the table. A group refused for its first record's id was stored by an earlier
   * attempt whose acknowledgement was lost: it is not written again, and its records go to the log
   * all the same (an id that collided would otherwise lose them).
   */
  private async writeAlone(group: RecordGroup, refusal: unknown): Promise<void> {
    const stored = isUniqueViolation(refusal);
    for (const record of group.records) {
      try {
        if (stored || group.records.length === 1) throw refusal;
        await this.writer.append([{ ...group, records: [record] }]);
      } catch (error) {
        if (isDatabaseTransient(error)) {
          this.retrySize = 1;
          throw error;
        }
        const why = stored ? 'an invocation record was refused as stored already (a write retried after its commit went unacknowledged); kept here' : 'an invocation record was refused by the database; kept here';
        this.log.error(why, { error, record });
      }
      this.queue.shift();
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

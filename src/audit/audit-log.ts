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

const recordCount = (groups: readonly RecordGroup[]) => groups.reduce((n, g) => n + g.records.length, 0);
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
   * The groups of the write that failed on the way (the queue's head): its commit may have landed
   * all the same, so the retry sends exactly these, in one transaction as before. Records that
   * arrived since must not join them: a retry refused by a unique id means that write was stored.
   */
  private retryUnit: RecordGroup[] | undefined;
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
    const retry = this.retryUnit;
    const groups = retry ?? groupRecords(this.queue.slice(0, this.maxBatch));
    const size = recordCount(groups);
    try {
      await this.writer.append(groups);
      this.retryUnit = undefined;
      this.queue.splice(0, size);
      return;
    } catch (error) {
      if (isDatabaseTransient(error)) throw this.interrupted(error, groups);
      this.retryUnit = undefined;
      if (retry && isUniqueViolation(error)) {
        // One transaction: its first attempt was stored whole.
        this.log.warn('a retried write of invocation records found them stored already (its commit went unacknowledged); not written twice', { records: size });
        this.queue.splice(0, size);
        return;
      }
    }
    // A group the database refuses must not hold up every record behind it: write them group by
    // group, and a refused group record by record.
    for (const group of groups) {
      try {
        await this.writer.append([group]);
        this.queue.splice(0, group.records.length);
      } catch (error) {
        if (isDatabaseTransient(error)) throw this.interrupted(error, [group]);
        await this.writeAlone(group, error);
      }
    }
  }

  /** A write that failed on the way: pinned for the retry (see retryUnit), the outage logged once. */
  private interrupted(error: unknown, unit: RecordGroup[]): unknown {
    if (!this.failing) this.log.error('writing invocation records failed; they stay queued and are retried', { error, queued: this.queue.length });
    this.failing = true;
    this.retryUnit = unit;
    return error;
  }

  /**
   * The records of a refused group (the queue's head), each in a row of its own, taken off the
   * queue one by one; one the database refuses too goes to the log (records hold no secrets)
   * instead of the table. When the first record is refused for its id, the group is stored
   * already (an earlier attempt's commit went unacknowledged): the rest is not written again, and
   * its records go to the log all the same (an id that collided would otherwise lose them).
   */
  private async writeAlone(group: RecordGroup, refusal: unknown): Promise<void> {
    const { records } = group;
    for (let i = 0; i < records.length; i++) {
      const alone = { ...group, records: [records[i]!] };
      try {
        if (records.length === 1) throw refusal;
        await this.writer.append([alone]);
      } catch (error) {
        if (isDatabaseTransient(error)) throw this.interrupted(error, [alone]);
        if (i === 0 && isUniqueViolation(error)) {
          for (const record of records) this.log.error('an invocation record was refused as stored already (a write retried after its commit went unacknowledged); kept here', { error, record });
          this.queue.splice(0, records.length);
          return;
        }
        this.log.error('an invocation record was refused by the database; kept here', { error, record: records[i] });
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
      // The last chance to keep them: every record still queued goes to the error log (those of a
      // write whose commit went unacknowledged may be stored already: the log says which).
      const unsure = new Set(this.retryUnit?.flatMap((g) => g.records));
      for (const record of this.queue) this.log.error(unsure.has(record) ? 'invocation record not known to be written at shutdown (its write failed on the way and may be stored); kept here' : 'invocation record not written at shutdown; kept here', { record });
      throw error;
    } finally {
      this.closed = true;
      clearTimeout(this.timer);
      await this.writer.close().catch(() => {});
    }
  }
}

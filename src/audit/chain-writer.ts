// Appending a batch of record groups to the hash chain: read the newest stored hash, chain the
// groups onto it, insert them, commit. The batch travels in COPY's text format, one line per group
// (src/audit/chain.ts, groupRecords), and one COPY ... FROM loads it: the server parses plain
// tab-separated text, where unpacking one JSON parameter with INSERT ... SELECT cost it ~25% more
// CPU per row for the same work in the hub (bench/RESULTS.md, 2026-11-27); Prisma's createMany
// compiled a parameter per column and row.
// Two writers, one per database, each on the driver itself rather than through Prisma:
// - PostgreSQL: a small pg pool of its own (the audit write is the only SQL on a warm invoke),
//   under an advisory lock, so that processes sharing the database extend one chain.
// - PGlite: the instance itself. PGlite's transaction() holds the lock that every query(), exec()
//   and transaction() on the instance takes (Prisma's adapter uses those too), so no statement
//   lands between reading the newest hash and the COPY; no advisory lock is needed (PGlite has
//   one session anyway). Through Prisma's interactive transaction a write took longer on the
//   hub's thread and held up the calls waiting behind it (bench/RESULTS.md, 2026-11-26 16:06).
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { copyIn } from '../db/copy-in.js';
import { chainHash, GENESIS, storedRecord, type InvocationEntry, type RecordGroup } from './chain.js';

const CHAIN_LOCK = 72_470_003;

/** called for every SQL statement a writer sends (the hub counts them in hub_db_queries_total) */
export type StatementListener = () => void;

export interface ChainWriter {
  /** Appends the groups, in order, in one transaction; throws if nothing was written. */
  append(groups: readonly RecordGroup[]): Promise<void>;
  /** the most records worth sending in one write */
  readonly maxBatch: number;
  close(): Promise<void>;
}

// COPY's text format: a backslash, a tab (the delimiter), a newline or a carriage return in a value
// is written as a backslash escape; \N is NULL. Caller-chosen text reaches a record already
// JSON-escaped when it is not printable ASCII (invoke-service's storable), so only its backslashes
// are common here.
const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyText = (s: string) => (COPY_SPECIAL.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : s);
const copyNullable = (s: string | null) => (s === null ? '\\N' : copyText(s));

// String.prototype.isWellFormed / toWellFormed (Node 20; not in the ES2023 lib's types).
type Unicode = { isWellFormed(): boolean; toWellFormed(): string };
const wellFormed = (s: string) => (s as unknown as Unicode).isWellFormed();
const repaired = (s: string) => (s as unknown as Unicode).toWellFormed();

/**
 * The record as the database will hold it. The lines travel as UTF-8, in which a lone surrogate
 * becomes U+FFFD, while JSON (what the hash covers) escapes it: such text would be stored other
 * than hashed and the chain would stop verifying. invoke-service's storable() keeps them out of
 * caller-chosen text; this is the writer's own guard, for any field.
 */
function asStored(e: InvocationEntry): InvocationEntry {
  const { callerId, tenantId, systemId, path, code, requestId } = e;
  if (wellFormed(tenantId) && wellFormed(systemId) && wellFormed(path) && wellFormed(requestId) && (callerId === null || wellFormed(callerId)) && (code === null || wellFormed(code))) return e;
  return {
    ...e,
    callerId: callerId === null ? null : repaired(callerId),
    tenantId: repaired(tenantId),
    systemId: repaired(systemId),
    path: repaired(path),
    code: code === null ? null : repaired(code),
    requestId: repaired(requestId),
  };
}

/**
 * The groups chained onto prev, as COPY_ROWS reads them: one line per group, its columns followed by
 * the hash before its first record and the hash after its last (chainHash covers each record's
 * fields as JSON, not this line).
 */
function chainedLines(prev: string, groups: readonly RecordGroup[]): string {
  let text = '';
  for (const group of groups) {
    const first = prev;
    let records = '';
    for (const record of group.records) {
      const e = asStored(record);
      prev = chainHash(prev, e);
      records += (records ? ',' : '[') + JSON.stringify(storedRecord(e));
    }
    const head = asStored(group.records[0]!);
    text += `${head.id}\t${copyNullable(head.callerId)}\t${copyText(head.tenantId)}\t${copyText(head.systemId)}\t${group.records.length}\t${copyText(records)}]\t${first}\t${prev}\n`;
  }
  return text;
}

const LAST_HASH = `SELECT "hash" FROM "InvocationGroup" ORDER BY "seq" DESC LIMIT 1`;
/**
 * PostgreSQL: open the transaction, bound its statements' time (the wait for the lock included;
 * SET LOCAL rather than a connection parameter, which PgBouncer refuses), take the chain lock,
 * then read the newest hash. READ COMMITTED whatever the server's default: under REPEATABLE READ
 * the snapshot would be taken before the lock is held, and two writers could chain onto one hash.
 */
const BEGIN_LOCKED = `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL statement_timeout = 30000; SELECT pg_advisory_xact_lock(${CHAIN_LOCK}); ${LAST_HASH}`;

// The lines' order is the rows' order, so seq follows the chain.
const COLUMNS = `"id", "callerId", "tenantId", "systemId", "count", "records", "prevHash", "hash"`;
const COPY_ROWS = `COPY "InvocationGroup" (${COLUMNS}) FROM STDIN`;
// PGlite reads COPY data from a file its query() is handed as a Blob, at this path.
const COPY_ROWS_PGLITE = `COPY "InvocationGroup" (${COLUMNS}) FROM '/dev/blob'`;

export class PgliteChainWriter implements ChainWriter {
  readonly maxBatch = 5000;
  constructor(
    private readonly db: PGlite,
    private readonly onStatement: StatementListener = () => {},
  ) {}

  async append(groups: readonly RecordGroup[]): Promise<void> {
    let began = false;
    try {
      // PGlite runs no other query while the transaction is open, and rolls it back on an error.
      await this.db.transaction(async (tx) => {
        began = true;
        this.onStatement(); // BEGIN
        this.onStatement();
        const last = await tx.query<{ hash: string }>(LAST_HASH);
        this.onStatement();
        await tx.query(COPY_ROWS_PGLITE, [], { blob: new Blob([chainedLines(last.rows[0]?.hash ?? GENESIS, groups)]) });
      });
    } finally {
      if (began) this.onStatement(); // COMMIT or ROLLBACK
    }
  }

  async close(): Promise<void> {}
}

export class PostgresChainWriter implements ChainWriter {
  readonly maxBatch = 5000;
  private readonly pool: pg.Pool;

  /** @param connectTimeoutMs a database that hangs counts as unreachable after this long */
  constructor(
    url: string,
    connectTimeoutMs: number,
    private readonly onStatement: StatementListener = () => {},
  ) {
    // One writer at a time holds the chain lock anyway: two connections are plenty.
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: connectTimeoutMs, idleTimeoutMillis: 30_000 });
    this.pool.on('error', () => {}); // an idle connection that drops is replaced on the next write
  }

  async append(groups: readonly RecordGroup[]): Promise<void> {
    const client = await this.pool.connect();
    let broken: unknown;
    const query = <R extends pg.QueryResultRow>(sql: string, params?: unknown[], statements = 1) => {
      for (let i = 0; i < statements; i++) this.onStatement();
      return client.query<R>(sql, params);
    };
    try {
      try {
        // Four statements in one round trip (each round trip costs the hub ~0.1 ms of CPU): each
        // takes its own snapshot, so the newest hash is read once the lock is held.
        const opened = (await query(BEGIN_LOCKED, undefined, 4)) as unknown as pg.QueryResult<{ hash: string }>[];
        // One result per statement; anything else (a driver that answers only the last) must not
        // pass for "no record yet" and restart the chain.
        if (!Array.isArray(opened) || opened.length !== 4) throw new Error('the audit writer expected four results from its first round trip');
        const last = opened[3]!;
        this.onStatement();
        await copyIn(client, COPY_ROWS, chainedLines(last.rows[0]?.hash ?? GENESIS, groups));
        await query('COMMIT');
      } catch (error) {
        await query('ROLLBACK').catch((rollback: unknown) => (broken = rollback));
        throw error;
      }
    } catch (error) {
      broken ??= isConnectionError(error) ? error : undefined;
      throw error;
    } finally {
      // A connection that failed mid-transaction is not given back for reuse.
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

const isConnectionError = (error: unknown) => !(error as { code?: unknown })?.code || /^(08|57P)/.test(String((error as { code?: unknown }).code));

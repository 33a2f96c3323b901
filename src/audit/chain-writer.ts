// Appending a batch of records to the hash chain: read the newest stored hash, chain the batch
// onto it, insert it, commit. The batch travels as one JSON text parameter (an array of rows, each
// an array of columns) and one INSERT ... SELECT unpacks it: serialising it is one native
// JSON.stringify, where Prisma's createMany compiled a statement of 13 parameters per record and
// pg's array parameters escaped every value in JavaScript.
// Two writers, one per database, each on the driver itself rather than through Prisma:
// - PostgreSQL: a small pg pool of its own (the audit write is the only SQL on a warm invoke),
//   under an advisory lock, so that processes sharing the database extend one chain.
// - PGlite: the instance itself. PGlite's transaction() holds the lock that every query(), exec()
//   and transaction() on the instance takes (Prisma's adapter uses those too), so no statement
//   lands between reading the newest hash and the INSERT; no advisory lock is needed (PGlite has
//   one session anyway). Through Prisma's interactive transaction a write took longer on the
//   hub's thread and held up the calls waiting behind it (bench/RESULTS.md, 2026-11-26 16:06).
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { chainHash, entryFieldsJson, GENESIS, type InvocationEntry } from './chain.js';

const CHAIN_LOCK = 72_470_003;

/** called for every SQL statement a writer sends (the hub counts them in hub_db_queries_total) */
export type StatementListener = () => void;

export interface ChainWriter {
  /** Appends the batch, in order, in one transaction; throws if nothing was written. */
  append(batch: InvocationEntry[]): Promise<void>;
  /** the largest batch worth sending in one write */
  readonly maxBatch: number;
  close(): Promise<void>;
}

/**
 * The batch chained onto prev, as the JSON text INSERT_JSON reads: each row is the record's fields
 * (serialised once: the hash covers that same text) followed by the previous hash and its own.
 */
function chainedRows(prev: string, batch: InvocationEntry[]): string {
  if (batch.length === 0) return '[]';
  const rows = batch.map((e) => {
    const fields = entryFieldsJson(e);
    const hash = chainHash(prev, e, fields);
    const row = `${fields.slice(0, -1)},"${prev}","${hash}"]`;
    prev = hash;
    return row;
  });
  // The brackets go on the first and last rows, not around the joined text: that would be one
  // more copy of the whole batch, made when the driver measures the parameter.
  rows[0] = `[${rows[0]}`;
  rows[rows.length - 1] += ']';
  return rows.join(',');
}

const LAST_HASH = `SELECT "hash" FROM "Invocation" ORDER BY "seq" DESC LIMIT 1`;
/**
 * PostgreSQL: open the transaction, bound its statements' time (the wait for the lock included;
 * SET LOCAL rather than a connection parameter, which PgBouncer refuses), take the chain lock,
 * then read the newest hash. READ COMMITTED whatever the server's default: under REPEATABLE READ
 * the snapshot would be taken before the lock is held, and two writers could chain onto one hash.
 */
const BEGIN_LOCKED = `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL statement_timeout = 30000; SELECT pg_advisory_xact_lock(${CHAIN_LOCK}); ${LAST_HASH}`;

// WITH ORDINALITY keeps the batch's order, so seq follows the chain. ->> yields text (or NULL for
// a JSON null), cast to each column's type. jsonb, not json: parsed once, where ->> on json
// scans each row's text again for every column (PGlite: ~25% less time per row).
const INSERT_JSON = `INSERT INTO "Invocation" ("id", "createdAt", "callerId", "tenantId", "systemId", "method", "path", "status", "code", "durationMs", "requestId", "prevHash", "hash")
SELECT r->>0, (r->>1)::timestamptz, r->>2, r->>3, r->>4, (r->>5)::"HttpMethod", r->>6, (r->>7)::int, r->>8, (r->>9)::float8, r->>10, r->>11, r->>12
FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(r, n)
ORDER BY n`;

export class PgliteChainWriter implements ChainWriter {
  readonly maxBatch = 5000;
  constructor(
    private readonly db: PGlite,
    private readonly onStatement: StatementListener = () => {},
  ) {}

  async append(batch: InvocationEntry[]): Promise<void> {
    let began = false;
    try {
      // PGlite runs no other query while the transaction is open, and rolls it back on an error.
      await this.db.transaction(async (tx) => {
        began = true;
        this.onStatement(); // BEGIN
        this.onStatement();
        const last = await tx.query<{ hash: string }>(LAST_HASH);
        this.onStatement();
        await tx.query(INSERT_JSON, [chainedRows(last.rows[0]?.hash ?? GENESIS, batch)]);
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

  async append(batch: InvocationEntry[]): Promise<void> {
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
        await query(INSERT_JSON, [chainedRows(last.rows[0]?.hash ?? GENESIS, batch)]);
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

// Appending a batch of records to the hash chain: take the chain's advisory lock, read the newest
// stored hash, chain the batch onto it, insert it, commit. Two writers, one per database:
// - PostgreSQL: a small pg pool of its own and one INSERT over unnest()ed arrays. The audit write
//   is the only SQL on a warm invoke; through Prisma's interactive transactions it was the largest
//   single cost of the hot path (see bench/RESULTS.md, Profile).
// - PGlite: Prisma's createMany (PGlite's own parameter handling makes the unnest form slower there).
import pg from 'pg';
import type { Prisma } from '../db/database.js';
import { chainHash, GENESIS, type InvocationEntry } from './chain.js';

const CHAIN_LOCK = 72_470_003;

export interface ChainWriter {
  /** Appends the batch, in order, in one transaction; throws if nothing was written. */
  append(batch: InvocationEntry[]): Promise<void>;
  /** the largest batch worth sending in one write */
  readonly maxBatch: number;
  close(): Promise<void>;
}

type ChainedRow = InvocationEntry & { prevHash: string; hash: string };

function chain(prev: string, batch: InvocationEntry[]): ChainedRow[] {
  return batch.map((e) => {
    const hash = chainHash(prev, e);
    const row = { ...e, prevHash: prev, hash };
    prev = hash;
    return row;
  });
}

const LAST_HASH = `SELECT "hash" FROM "Invocation" ORDER BY "seq" DESC LIMIT 1`;

export class PrismaChainWriter implements ChainWriter {
  readonly maxBatch = 500;
  constructor(private readonly prisma: Prisma) {}

  async append(batch: InvocationEntry[]): Promise<void> {
    await this.prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${CHAIN_LOCK})`);
        const [last] = await tx.$queryRawUnsafe<{ hash: string }[]>(LAST_HASH);
        await tx.invocation.createMany({ data: chain(last?.hash ?? GENESIS, batch) });
      },
      // Waits on other writers or a busy connection pass; the records stay queued meanwhile.
      { maxWait: 10_000, timeout: 30_000 },
    );
  }

  async close(): Promise<void> {}
}

// Column order of the insert; each array is cast to the column's type. WITH ORDINALITY keeps the
// batch's order, so seq follows the chain.
const INSERT_UNNEST = `INSERT INTO "Invocation" ("id", "createdAt", "callerId", "tenantId", "systemId", "method", "path", "status", "code", "durationMs", "requestId", "prevHash", "hash")
SELECT "id", "createdAt", "callerId", "tenantId", "systemId", "method", "path", "status", "code", "durationMs", "requestId", "prevHash", "hash"
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::"HttpMethod"[], $7::text[], $8::int[], $9::text[], $10::float8[], $11::text[], $12::text[], $13::text[])
  WITH ORDINALITY AS r("id", "createdAt", "callerId", "tenantId", "systemId", "method", "path", "status", "code", "durationMs", "requestId", "prevHash", "hash", "n")
ORDER BY "n"`;

export class PostgresChainWriter implements ChainWriter {
  readonly maxBatch = 5000;
  private readonly pool: pg.Pool;

  /** @param connectTimeoutMs a database that hangs counts as unreachable after this long */
  constructor(url: string, connectTimeoutMs: number) {
    // One writer at a time holds the chain lock anyway: two connections are plenty.
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: connectTimeoutMs, idleTimeoutMillis: 30_000 });
    this.pool.on('error', () => {}); // an idle connection that drops is replaced on the next write
  }

  async append(batch: InvocationEntry[]): Promise<void> {
    const client = await this.pool.connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL statement_timeout = 30000`);
        await client.query(`SELECT pg_advisory_xact_lock(${CHAIN_LOCK})`);
        const last = await client.query<{ hash: string }>(LAST_HASH);
        const rows = chain(last.rows[0]?.hash ?? GENESIS, batch);
        const column = <T>(pick: (r: ChainedRow) => T) => rows.map(pick);
        await client.query(INSERT_UNNEST, [
          column((r) => r.id),
          column((r) => r.createdAt.toISOString()),
          column((r) => r.callerId),
          column((r) => r.tenantId),
          column((r) => r.systemId),
          column((r) => r.method),
          column((r) => r.path),
          column((r) => r.status),
          column((r) => r.code),
          column((r) => r.durationMs),
          column((r) => r.requestId),
          column((r) => r.prevHash),
          column((r) => r.hash),
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch((rollback: unknown) => (broken = rollback));
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

// A fresh, migrated database for one hub: a PGlite clone of the template, or a new PostgreSQL
// database created from the template database.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { PGLITE_TEMPLATE, POSTGRES_URL, postgresUrlFor, TEMPLATE_DB, TEST_DB_PREFIX, type DbKind } from './databases.js';

export interface TestDatabase {
  kind: DbKind;
  /** postgres only */
  url?: string;
  /** pglite only: the open in-memory instance, handed to the hub */
  pglite?: PGlite;
  /** Runs SQL directly (tests that tamper or inspect). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** Runs one statement on the server's maintenance connection (create/drop/alter databases). */
export async function adminQuery(sql: string) {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

export async function createTestDatabase(kind: DbKind, opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  if (kind === 'pglite') {
    const pglite = opts.empty ? new PGlite() : new PGlite({ loadDataDir: new Blob([await readFile(PGLITE_TEMPLATE)]) });
    await pglite.waitReady;
    return {
      kind,
      pglite,
      query: async <T>(sql: string, params: unknown[] = []) => (await pglite.query<T>(sql, params)).rows,
      drop: async () => {
        if (!pglite.closed) await pglite.close();
      },
    };
  }
  const name = TEST_DB_PREFIX + randomBytes(6).toString('hex');
  await adminQuery(opts.empty ? `CREATE DATABASE "${name}"` : `CREATE DATABASE "${name}" TEMPLATE "${TEMPLATE_DB}"`);
  const url = postgresUrlFor(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  return {
    kind,
    url,
    query: async <T>(sql: string, params: unknown[] = []) => (await pool.query(sql, params)).rows as T[],
    drop: async () => {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

/**
 * PostgreSQL: resolves with the pids of this database's sessions that wait for a lock (of one
 * pg_stat_activity wait_event, such as 'advisory', when given) once there are at least `count`, or
 * as soon as `settled()` turns true (what was awaited finished without waiting). Read through the
 * database's own pool, outside any holder's transaction, which would see one snapshot of it.
 */
export async function lockWaiters(db: TestDatabase, opts: { count?: number; event?: string; settled?: () => boolean } = {}): Promise<number[]> {
  const sql = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'${opts.event ? ' AND wait_event = $1' : ''}`;
  for (;;) {
    const rows = await db.query<{ pid: number }>(sql, opts.event ? [opts.event] : []);
    if (rows.length >= (opts.count ?? 1) || opts.settled?.()) return rows.map((r) => r.pid);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** PostgreSQL: sessions opened from now on run REPEATABLE READ unless they say otherwise. */
export async function repeatableReadByDefault(db: TestDatabase): Promise<void> {
  await db.query(`ALTER DATABASE "${new URL(db.url!).pathname.slice(1)}" SET default_transaction_isolation = 'repeatable read'`);
}

// The narrow SQL surface the migrator and health checks need, over either database driver.
// Prisma is used for everything else.
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

export interface SqlRunner {
  /** Runs a script of one or more statements. */
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export function pgliteRunner(db: PGlite): SqlRunner {
  return {
    exec: async (sql) => {
      await db.exec(sql);
    },
    query: async <T>(sql: string, params: unknown[] = []) => (await db.query<T>(sql, params)).rows,
    close: async () => {}, // the PGlite instance is closed by its owner
  };
}

/** One dedicated connection: session-level advisory locks need it. */
export async function postgresRunner(url: string): Promise<SqlRunner> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // An idle connection that the server drops must not crash the process.
  client.on('error', () => {});
  return {
    exec: async (sql) => {
      await client.query(sql);
    },
    query: async <T>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as T[],
    close: () => client.end(),
  };
}

// Applies the committed prisma/migrations/*/migration.sql in order, in-process, at start-up.
// Each migration runs in its own transaction and is recorded in _prisma_migrations in Prisma's own
// format, so `prisma migrate status` agrees. A PostgreSQL advisory lock makes processes that start
// together apply each migration once: the others wait, then find it recorded.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import type { SqlRunner } from './sql-runner.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

// Any constant works; it only has to be the same in every hub process.
const MIGRATION_LOCK = 72_470_001;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

/** Returns the names of the migrations this call applied. */
export async function applyMigrations(sql: SqlRunner, log: Logger, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? (await readMigrations());
  await sql.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await sql.exec(CREATE_TABLE);
    const rows = await sql.query<{ migration_name: string; checksum: string }>(
      'SELECT migration_name, checksum FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    );
    const done = new Map(rows.map((r) => [r.migration_name, r.checksum]));
    const applied: string[] = [];
    for (const m of all) {
      const recorded = done.get(m.name);
      if (recorded !== undefined) {
        if (recorded !== m.checksum) log.warn('an applied migration was edited after it ran', { migration: m.name });
        continue;
      }
      const id = randomUUID();
      await sql.exec('BEGIN');
      try {
        await sql.exec(m.sql);
        await sql.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
           VALUES ($1, $2, $3, now(), now(), 1)`,
          [id, m.checksum, m.name],
        );
        await sql.exec('COMMIT');
      } catch (error) {
        await sql.exec('ROLLBACK');
        throw new Error(`migration ${m.name} failed: ${(error as Error).message}`);
      }
      applied.push(m.name);
      log.info('migration applied', { migration: m.name });
    }
    return applied;
  } finally {
    await sql.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}

// Once per test run: a migrated template of each database, so every hub in a test starts on a
// fresh, migrated database in a fraction of a second (PGlite: a data-dir dump; PostgreSQL: a
// template database).
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { applyMigrations } from '../../src/db/migrate.js';
import { pgliteRunner, postgresRunner } from '../../src/db/sql-runner.js';
import { createLogger } from '../../src/log.js';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';

const log = createLogger('error');

// The run id must be in the environment before the helpers that name databases are loaded, in
// this process and in the test workers (which inherit it).
process.env.HUB_TEST_RUN_ID ??= `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const { PGLITE_TEMPLATE, POSTGRES_URL, postgresUrlFor, TEMPLATE_DB, testDatabases } = await import('./databases.js');

export async function teardown() {
  await rm(PGLITE_TEMPLATE, { force: true });
  if (!testDatabases().includes('postgres')) return;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${TEMPLATE_DB}" WITH (FORCE)`);
  await admin.end();
}

export async function setup() {
  const kinds = testDatabases();
  if (kinds.includes('pglite')) {
    const db = new PGlite();
    await applyMigrations(pgliteRunner(db), log);
    const dump = await db.dumpDataDir('none');
    await mkdir(fileURLToPath(new URL('.', PGLITE_TEMPLATE)), { recursive: true });
    await writeFile(PGLITE_TEMPLATE, Buffer.from(await dump.arrayBuffer()));
    await db.close();
  }
  if (kinds.includes('postgres')) {
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    try {
      await admin.connect();
    } catch (error) {
      throw new Error(`PostgreSQL tests need ${POSTGRES_URL} (set HUB_TEST_DB=pglite to run without it): ${(error as Error).message}`);
    }
    // Leftovers of interrupted runs: dropped only when nobody uses them (a parallel run's are busy).
    const stale = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database d WHERE (datname LIKE 'hub\\_t\\_%' OR datname LIKE 'hub\\_tpl\\_%')
         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
         AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification < now() - interval '2 hours'`,
    ).catch(() => ({ rows: [] as { datname: string }[] }));
    for (const { datname } of stale.rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}"`).catch(() => {});
    await admin.query(`CREATE DATABASE "${TEMPLATE_DB}"`);
    const runner = await postgresRunner(postgresUrlFor(TEMPLATE_DB));
    await applyMigrations(runner, log);
    await runner.close();
    await admin.end();
  }
}

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
import { PGLITE_TEMPLATE, POSTGRES_URL, postgresUrlFor, TEMPLATE_DB, testDatabases } from './databases.js';

const log = createLogger('error');

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
    // Leftovers of an interrupted run.
    const stale = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'hub_t_%' OR datname = $1`, [TEMPLATE_DB]);
    for (const { datname } of stale.rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${TEMPLATE_DB}"`);
    const runner = await postgresRunner(postgresUrlFor(TEMPLATE_DB));
    await applyMigrations(runner, log);
    await runner.close();
    await admin.end();
  }
}

// The migration that moved invocation records into group rows (20261127212130_invocation_groups):
// records stored one per row before it keep their fields, their order and their hashes, so the
// chain still verifies, and the list and the "Invocation" view show them as before.
import { afterEach, describe, expect, it } from 'vitest';
import { chainHash, GENESIS, type InvocationEntry } from '../src/audit/chain.js';
import { listInvocations, verifyChain } from '../src/audit/invocations.js';
import { openDatabase, type Database } from '../src/db/database.js';
import { applyMigrations, readMigrations } from '../src/db/migrate.js';
import { pgliteRunner, postgresRunner, type SqlRunner } from '../src/db/sql-runner.js';
import { createLogger } from '../src/log.js';
import { testDatabases } from './helpers/databases.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const log = createLogger('error', () => {});
const GROUPS_MIGRATION = '20261127212130_invocation_groups';

describe.each(testDatabases())('the invocation groups migration on %s', (kind) => {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;
  afterEach(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it('moves stored records into rows of one, with their hashes: the chain verifies and they list as before', { timeout: 30_000 }, async () => {
    testDb = await createTestDatabase(kind, { empty: true });
    const runner: SqlRunner = kind === 'pglite' ? pgliteRunner(testDb.pglite!) : await postgresRunner(testDb.url!);
    const all = await readMigrations();
    const at = all.findIndex((m) => m.name === GROUPS_MIGRATION);
    expect(at).toBeGreaterThan(0);
    await applyMigrations(runner, log, all.slice(0, at));

    // Records as the hub stored them before: one row each, chained record by record.
    const records: InvocationEntry[] = [
      { id: 'r1', createdAt: new Date(Date.UTC(2026, 10, 26, 23, 59, 59, 999)), callerId: null, tenantId: 't1', systemId: 's1', method: 'GET', path: '/a?x=1', status: 200, code: null, durationMs: 1.25, requestId: 'q1' },
      { id: 'r2', createdAt: new Date(Date.UTC(2026, 10, 27, 0, 0, 0, 0)), callerId: 'c1', tenantId: 't1', systemId: 's2', method: 'POST', path: '/b "quoted" \\ ünï', status: null, code: 'UPSTREAM_TIMEOUT', durationMs: 0.000123, requestId: 'q2' },
      { id: 'r3', createdAt: new Date(Date.UTC(1969, 11, 31, 23, 59, 59, 1)), callerId: 'c1', tenantId: 't2', systemId: 's1', method: 'DELETE', path: '/c', status: 404, code: null, durationMs: 12345.678, requestId: 'q3' },
    ];
    let prev = GENESIS;
    for (const e of records) {
      const hash = chainHash(prev, e);
      await runner.query(
        `INSERT INTO "Invocation" ("id", "createdAt", "callerId", "tenantId", "systemId", "method", "path", "status", "code", "durationMs", "requestId", "prevHash", "hash")
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [e.id, e.createdAt.toISOString(), e.callerId, e.tenantId, e.systemId, e.method, e.path, e.status, e.code, e.durationMs, e.requestId, prev, hash],
      );
      prev = hash;
    }

    expect(await applyMigrations(runner, log, all)).toContain(GROUPS_MIGRATION);
    if (kind === 'postgres') await runner.close();
    db = await openDatabase({ url: testDb.url, dataDir: '.', poolSize: 2, log, pglite: testDb.pglite });

    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 3, firstBrokenId: null });
    const page = await listInvocations(db.prisma, {}, 10, null);
    expect(page.edges.map((e) => e.node)).toEqual([...records].reverse());
    expect(page.totalCount).toBe(3);
    const view = await testDb.query<Record<string, unknown>>(`SELECT "id", "path", "status", "code", "durationMs", "requestId", "method"::text AS "method" FROM "Invocation" ORDER BY "seq", "index"`);
    expect(view).toEqual(records.map(({ id, path, status, code, durationMs, requestId, method }) => ({ id, path, status, code, durationMs, requestId, method })));
    // The sequence goes on after the moved rows
    await testDb.query(`INSERT INTO "InvocationGroup" ("id", "tenantId", "systemId", "count", "records", "prevHash", "hash") VALUES ('next', 't', 's', 0, '[]', '', '')`);
    expect((await testDb.query<{ seq: number }>(`SELECT "seq"::int AS seq FROM "InvocationGroup" WHERE "id" = 'next'`))[0]!.seq).toBe(4);
  });
});

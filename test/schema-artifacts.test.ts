// Build artefacts that must match the code: the printed schema and the committed migrations.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it } from 'vitest';
import { applyMigrations } from '../src/db/migrate.js';
import { pgliteRunner } from '../src/db/sql-runner.js';
import { createLogger } from '../src/log.js';
import { printHubSchema } from '../src/schema/index.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url);

describe('schema.graphql', () => {
  it('is the schema printed from the code (run `npm run schema:print` after changing it)', async () => {
    const committed = await readFile(new URL('schema.graphql', root), 'utf8');
    expect(committed).toBe(printHubSchema());
  });

  it('holds every name of the public contract', async () => {
    const sdl = printHubSchema();
    const names = [
      'invoke(params: InvokeParams!, systemId: ID!, tenantId: ID!): InvokeResult\n',
      'verifyInvocationChain: ChainVerification!',
      'bindSystem(input: BindSystemInput!): Binding!',
      'setCredential(credential: CredentialInput!, systemId: ID!, tenantId: ID!): Binding!',
      'createCaller(input: CreateCallerInput!): CreatedCaller!',
      'issueApiKey(callerId: ID!',
      'revokeApiKey(id: ID!): ApiKey!',
      'grant(input: GrantInput!): Grant!',
      'revokeGrant(id: ID!): Boolean!',
      'enum CredentialKind {\n  BEARER\n  HEADER\n  NONE\n  OAUTH2_CLIENT_CREDENTIALS\n}',
      'type ChainVerification {\n  checked: Int!\n  firstBrokenId: ID\n  ok: Boolean!\n}',
    ];
    for (const name of names) expect(sdl).toContain(name);
  });
});

// The catalog of a database: what two ways of building the schema must agree on. Views are made by
// migrations only (Prisma's schema does not describe them); the tests of what they show are elsewhere.
async function catalog(db: PGlite) {
  const q = async (sql: string) => (await db.query(sql)).rows;
  return {
    columns: await q(`SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
      FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'
        AND table_name NOT IN (SELECT table_name FROM information_schema.views WHERE table_schema = 'public') ORDER BY 1, 2`),
    constraints: await q(`SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '%prisma_migrations%' ORDER BY 1, 2`),
    indexes: await q(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_prisma_migrations' ORDER BY 1, 2`),
    enums: await q(`SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY 1, e.enumsortorder`),
  };
}

describe('prisma/migrations', () => {
  it('build exactly the schema of prisma/schema.prisma', { timeout: 120_000 }, async () => {
    const { stdout: expectedSql } = await run(
      'npx',
      ['prisma', 'migrate', 'diff', '--from-empty', '--to-schema-datamodel', 'prisma/schema.prisma', '--script'],
      { cwd: root, env: { ...process.env, DATABASE_URL: undefined } },
    );
    const fromSchema = new PGlite();
    await fromSchema.exec(expectedSql);
    const fromMigrations = new PGlite();
    const applied = await applyMigrations(pgliteRunner(fromMigrations), createLogger('error'));
    expect(applied.length).toBeGreaterThan(0);
    expect(await catalog(fromMigrations)).toEqual(await catalog(fromSchema));
    await Promise.all([fromSchema.close(), fromMigrations.close()]);
  });

  it('apply once: a second run finds them all recorded in _prisma_migrations', async () => {
    const db = new PGlite();
    const log = createLogger('error');
    const first = await applyMigrations(pgliteRunner(db), log);
    expect(await applyMigrations(pgliteRunner(db), log)).toEqual([]);
    const rows = (await db.query<{ migration_name: string; finished_at: Date | null }>('SELECT migration_name, finished_at FROM "_prisma_migrations"')).rows;
    expect(rows.map((r) => r.migration_name).sort()).toEqual(first.sort());
    expect(rows.every((r) => r.finished_at !== null)).toBe(true);
    await db.close();
  });
});

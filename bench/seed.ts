// Registries for the benchmark.
//   seedSmall: 10 tenants, an EXCLUSIVE system with BEARER tokens, a batch-capable system and a
//     caller with a grant per tenant, made through the hub's public GraphQL API (as an admin would).
//   seedLargeRegistry: 100,000 tenants x 5 systems (bindings with credential NONE) and a caller
//     granted every tenant, written with SQL straight into a migrated, not yet started database.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { applyMigrations } from '../src/db/migrate.js';
import { pgliteRunner, postgresRunner, type SqlRunner } from '../src/db/sql-runner.js';
import { createLogger } from '../src/log.js';

export const SMALL_TENANTS = Array.from({ length: 10 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`);
/** EXCLUSIVE, BEARER token per tenant, no batching */
export const PLAIN_SYSTEM = 'crm';
/** EXCLUSIVE, BEARER token per tenant, batchPath /batch */
export const BATCH_SYSTEM = 'graph';

export const LARGE_TENANTS = 100_000;
export const LARGE_SYSTEMS = 5;
export const LARGE_CALLER = 'bench-all';
export const largeTenantId = (i: number) => `bt${String(i).padStart(6, '0')}`;
export const largeSystemId = (j: number) => `bs${j}`;

export interface SmallRegistry {
  callerKey: string;
  /** the BEARER token of tenant t01 on PLAIN_SYSTEM (the direct call sends it too) */
  token: string;
}

async function admin(hubUrl: string, adminKey: string, query: string, variables: Record<string, unknown>): Promise<Record<string, any>> {
  const res = await fetch(`${hubUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as { data?: Record<string, any>; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`seeding failed (HTTP ${res.status}): ${JSON.stringify(body.errors ?? body)}`);
  return body.data;
}

export const tokenOf = (tenantId: string, systemId: string) => `bench-${tenantId}-${systemId}-token`;

/** Seeds the small registry through GraphQL; upstreamUrl: the base URL every binding points at. */
export async function seedSmall(hubUrl: string, adminKey: string, upstreamUrl: string): Promise<SmallRegistry> {
  const gql = (q: string, v: Record<string, unknown>) => admin(hubUrl, adminKey, q, v);
  for (const id of SMALL_TENANTS) {
    await gql(`mutation($i: CreateTenantInput!) { createTenant(input: $i) { id } }`, { i: { id, name: `Bench tenant ${id}` } });
  }
  await gql(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: { id: PLAIN_SYSTEM, name: 'CRM', mode: 'EXCLUSIVE', timeoutMs: 5000 } });
  await gql(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, {
    i: { id: BATCH_SYSTEM, name: 'Graph', mode: 'EXCLUSIVE', timeoutMs: 5000, batchPath: '/batch', batchMaxSize: 20 },
  });
  for (const tenantId of SMALL_TENANTS) {
    for (const systemId of [PLAIN_SYSTEM, BATCH_SYSTEM]) {
      await gql(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
        i: { tenantId, systemId, baseUrl: upstreamUrl, credential: { kind: 'BEARER', token: tokenOf(tenantId, systemId) } },
      });
    }
  }
  const created = await gql(`mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey } }`, { i: { id: 'bench', name: 'Bench caller' } });
  for (const tenantId of SMALL_TENANTS) {
    await gql(`mutation($i: GrantInput!) { grant(input: $i) { id } }`, { i: { callerId: 'bench', tenantId, methods: ['GET'] } });
  }
  return { callerKey: created.createCaller.apiKey as string, token: tokenOf(SMALL_TENANTS[0]!, PLAIN_SYSTEM) };
}

/** An API key for the caller that the large seed created (it has no key of its own). */
export async function issueLargeCallerKey(hubUrl: string, adminKey: string): Promise<string> {
  const data = await admin(hubUrl, adminKey, `mutation($c: ID!) { issueApiKey(callerId: $c) { apiKey } }`, { c: LARGE_CALLER });
  return data.issueApiKey.apiKey as string;
}

const LARGE_SEED = [
  `INSERT INTO "Tenant" (id, name, "updatedAt")
     SELECT 'bt' || lpad(i::text, 6, '0'), 'Bench tenant ' || i, now() FROM generate_series(1, ${LARGE_TENANTS}) AS i`,
  `INSERT INTO "System" (id, name, mode, "timeoutMs", "updatedAt")
     SELECT 'bs' || j, 'Bench system ' || j, 'EXCLUSIVE', 5000, now() FROM generate_series(1, ${LARGE_SYSTEMS}) AS j`,
  // $1: the upstream's base URL
  `INSERT INTO "Binding" ("tenantId", "systemId", "baseUrl", "credentialKind", "updatedAt")
     SELECT 'bt' || lpad(i::text, 6, '0'), 'bs' || j, $1, 'NONE', now()
     FROM generate_series(1, ${LARGE_TENANTS}) AS i, generate_series(1, ${LARGE_SYSTEMS}) AS j`,
  `INSERT INTO "Caller" (id, name, role, "updatedAt") VALUES ('${LARGE_CALLER}', 'Bench caller granted every tenant', 'CALLER', now())`,
  `INSERT INTO "Grant" (id, "callerId", "tenantId", "systemId", methods, "pathPrefix")
     SELECT 'bg' || lpad(i::text, 6, '0'), '${LARGE_CALLER}', 'bt' || lpad(i::text, 6, '0'), NULL, ARRAY['GET']::"HttpMethod"[], '/fast'
     FROM generate_series(1, ${LARGE_TENANTS}) AS i`,
  'ANALYZE',
];

async function seedLarge(sql: SqlRunner, upstreamUrl: string): Promise<void> {
  await applyMigrations(sql, createLogger('warn'));
  // The rows are consistent by construction: skipping the foreign-key triggers halves the time.
  await sql.exec("SET session_replication_role = 'replica'");
  for (const statement of LARGE_SEED) await sql.query(statement, statement.includes('$1') ? [upstreamUrl] : []);
  await sql.exec("SET session_replication_role = 'origin'");
}

/** Seeds a PGlite data directory that no hub has open (the hub's own layout: <dataDir>/pglite). */
export async function seedLargePglite(dataDir: string, upstreamUrl: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const db = new PGlite(path.join(dataDir, 'pglite'));
  await db.waitReady;
  try {
    await seedLarge(pgliteRunner(db), upstreamUrl);
  } finally {
    await db.close();
  }
}

export async function seedLargePostgres(url: string, upstreamUrl: string): Promise<void> {
  const sql = await postgresRunner(url);
  try {
    await seedLarge(sql, upstreamUrl);
  } finally {
    await sql.close();
  }
}

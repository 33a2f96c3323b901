// Shared by test/access.test.ts and test/registry.test.ts: a full picture of the registry as an
// admin sees it over GraphQL (to prove that a refused mutation changed nothing), and error checks.
import { expect } from 'vitest';
import type { GqlResponse, TestHub } from './test-hub.js';

const SNAPSHOT = `{
  tenants(first: 500) {
    totalCount
    edges { node { id name disabled createdAt
      bindings { system { id } baseUrl disabled createdAt updatedAt credential { kind headerName updatedAt expiresAt } } } }
  }
  systems(first: 500) {
    totalCount
    edges { node { id name mode sharedBaseUrl tenantHeader timeoutMs batchPath batchMaxSize bindings { tenant { id } } } }
  }
  callers(first: 500) {
    totalCount
    edges { node { id name role disabled tenant { id }
      grants { id tenant { id } system { id } methods pathPrefix expiresAt createdAt }
      apiKeys { id prefix createdAt revokedAt expiresAt } } }
  }
}`;

/** Everything in the registry except ApiKey.lastUsedAt (it moves whenever a key is used). */
export async function registrySnapshot(hub: TestHub): Promise<unknown> {
  return hub.admin(SNAPSHOT);
}

/** Counts rows straight from the database (what GraphQL cannot list, such as API keys). */
export async function rowCounts(hub: TestHub): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['Tenant', 'System', 'Binding', 'Caller', 'ApiKey', 'Grant']) {
    const [row] = await hub.db.query<{ n: number | string }>(`SELECT count(*)::int AS n FROM "${table}"`);
    out[table] = Number(row!.n);
  }
  return out;
}

/** The response is a GraphQL error with this code (HTTP 200 unless told otherwise); returns the first error. */
export function expectError(res: GqlResponse, code: string, opts: { status?: number; message?: RegExp } = {}) {
  const detail = JSON.stringify(res.body);
  expect(res.status, detail).toBe(opts.status ?? 200);
  expect(res.body.errors?.length ?? 0, detail).toBeGreaterThan(0);
  const error = res.body.errors![0]!;
  expect(error.extensions?.code, detail).toBe(code);
  if (opts.message) expect(error.message, detail).toMatch(opts.message);
  return error;
}

/** The response has no errors; returns data. */
export function expectData<T = any>(res: GqlResponse<T>): T {
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  expect(res.status).toBe(200);
  return res.body.data as T;
}

// The process cache in front of the registry: a warm invoke runs no SQL at all, and a change made
// through the API is never served stale afterwards on this process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

describe.each(testDatabases())('registry cache on %s', (kind) => {
  let hub: TestHub;
  let upstream: Upstream;
  let callerKey: string;

  const invoke = (p: Record<string, unknown>, t = 'acme', s = 'crm', key = callerKey) => hub.gql(INVOKE_QUERY, { t, s, p }, { key });
  async function sqlDuring<T>(fn: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
    await hub.hub.audit.flush(); // earlier records: written now, not counted below
    const sql: string[] = [];
    const off = hub.hub.db.onQuery((q) => sql.push(q));
    try {
      return { result: await fn(), sql };
    } finally {
      off();
    }
  }

  beforeAll(async () => {
    upstream = await startUpstream();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: upstream.url, token: 'token-v1' });
    callerKey = await createCallerWithGrant(hub, { id: 'portal', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await upstream?.close();
  });

  it('serves a warm invoke without a single SQL statement', async () => {
    await invoke({ path: '/warm-up' });
    await invoke({ path: '/warm-up-2' });
    const { result, sql } = await sqlDuring(() => invoke({ path: '/warm' }));
    expect(result.body.errors).toBeUndefined();
    expect(result.body.data.invoke.status).toBe(200);
    expect(sql).toEqual([]);
    // and the cold path did use the database: the measurement can see statements
    hub.hub.cache.invalidate();
    const cold = await sqlDuring(() => invoke({ path: '/cold' }));
    expect(cold.sql.length).toBeGreaterThan(0);
  });

  it('never serves a revoked API key after the revocation', async () => {
    const issued = await hub.admin(`mutation { issueApiKey(callerId: "portal") { apiKey key { id } } }`);
    const key = issued.issueApiKey.apiKey as string;
    expect((await invoke({ path: '/k1' }, 'acme', 'crm', key)).body.data.invoke.status).toBe(200);
    await invoke({ path: '/k2' }, 'acme', 'crm', key); // warm
    await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`, { id: issued.issueApiKey.key.id });
    const after = await invoke({ path: '/k3' }, 'acme', 'crm', key);
    expect(after.status).toBe(401);
  });

  it('never serves a revoked grant, a disabled binding or tenant, or an old token after the change', async () => {
    await invoke({ path: '/g1' });
    await invoke({ path: '/g2' });
    await hub.admin(`mutation { setCredential(tenantId: "acme", systemId: "crm", credential: { kind: BEARER, token: "token-v2" }) { credential { kind } } }`);
    await invoke({ path: '/after-rotation' });
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer token-v2');

    await hub.admin(`mutation { updateTenant(id: "acme", input: { disabled: true }) { disabled } }`);
    expect((await invoke({ path: '/t' })).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await hub.admin(`mutation { updateTenant(id: "acme", input: { disabled: false }) { disabled } }`);
    expect((await invoke({ path: '/t2' })).body.data.invoke.status).toBe(200);

    const grants = await hub.admin(`{ caller(id: "portal") { grants { id } } }`);
    await hub.admin(`mutation($id: ID!) { revokeGrant(id: $id) }`, { id: grants.caller.grants[0].id });
    const refused = await invoke({ path: '/g3' });
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await hub.admin(`mutation { grant(input: { callerId: "portal", tenantId: "acme" }) { id } }`);
    expect((await invoke({ path: '/g4' })).body.data.invoke.status).toBe(200);
  });

  it('follows a binding moved to another deployment at once', async () => {
    const other = await startUpstream();
    await invoke({ path: '/m1' });
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "crm", baseUrl: "${other.url}", credential: { kind: BEARER, token: "token-v3" } }) { baseUrl } }`);
    await invoke({ path: '/moved' });
    expect(other.requests.map((r) => r.url)).toEqual(['/moved']);
    expect(other.requests[0]!.headers.authorization).toBe('Bearer token-v3');
    await other.close();
  });

  it('picks up a change made outside this process within the TTL', async () => {
    const own = await startTestHub(kind, { env: { HUB_CACHE_TTL_MS: '300' } });
    await seedExclusive(own, { tenantId: 'x', systemId: 'y', baseUrl: upstream.url });
    const key = await createCallerWithGrant(own, { id: 'c', grants: [{ tenantId: 'x' }] });
    const call = () => own.gql(INVOKE_QUERY, { t: 'x', s: 'y', p: { path: '/ttl' } }, { key });
    expect((await call()).body.data.invoke.status).toBe(200);
    // Another process (here: plain SQL) disables the tenant; this process has not been told.
    await own.db.query(`UPDATE "Tenant" SET disabled = true WHERE id = 'x'`);
    await new Promise((r) => setTimeout(r, 400));
    expect((await call()).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await own.close();
  });

  it('holds at most HUB_CACHE_ENTRIES entries, whatever the registry size', async () => {
    const own = await startTestHub(kind, { env: { HUB_CACHE_ENTRIES: '20' } });
    const ids = Array.from({ length: 30 }, (_, i) => `t${i}`);
    for (const id of ids) await seedExclusive(own, { tenantId: id, systemId: 'sys', baseUrl: upstream.url });
    for (const id of ids) {
      const res = await own.gql(INVOKE_QUERY, { t: id, s: 'sys', p: { path: '/n' } });
      expect(res.body.data.invoke.status).toBe(200);
    }
    expect(own.hub.cache.size).toBeLessThanOrEqual(20);
    expect(own.hub.cache.size).toBeGreaterThan(0);
    await own.close();
  });
});

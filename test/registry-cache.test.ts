// The process cache in front of the registry: a warm invoke runs no SQL at all, and a change made
// through the API is never served stale afterwards on this process.
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.js';
import { createLogger } from '../src/log.js';
import { RegistryLoaders } from '../src/registry/loaders.js';
import { RegistryCache } from '../src/registry/registry-cache.js';
import { isDatabaseUnavailable } from '../src/utils/database-errors.js';
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

// Stale-but-known: what the cache serves when a reload fails because the database is unreachable.
// The failures are real: connections to a loopback port nobody listens on.
/** a tenant row as the registry cache holds it */
const tenant = { id: 'acme', name: 'Acme', disabled: false, createdAt: new Date(), updatedAt: new Date() };

describe('registry cache while the database is unreachable', () => {
  let closedPort: number;
  let unreachable: Database;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** a real "database unreachable" error from the pg driver */
  const refused = async (): Promise<never> => {
    const client = new pg.Client({ host: '127.0.0.1', port: closedPort, user: 'postgres', database: 'x' });
    await client.connect();
    throw new Error('connected to a closed port');
  };

  beforeAll(async () => {
    closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    unreachable = await openDatabase({ url: `postgresql://postgres@127.0.0.1:${closedPort}/x`, dataDir: '.', poolSize: 1, log: createLogger('error', () => {}) });
  });
  afterAll(async () => {
    await unreachable?.close();
  });

  it('reloads an expired entry, and serves it (a known absence too) only when the reload finds no database', async () => {
    const cache = new RegistryCache({ ttlMs: 20, staleMs: 60_000 });
    await cache.load('key:a', async () => 'v1');
    await cache.load('key:revoked', async () => null);
    await sleep(40);
    expect(await cache.load('key:a', async () => 'v2')).toBe('v2'); // the database answers: fresh value
    await sleep(40);
    // Only an unreachable database is covered up; any other failure is the caller's to see.
    await expect(cache.load('key:a', async () => Promise.reject(new Error('syntax error')))).rejects.toThrow('syntax error');
    expect(await cache.load('key:a', refused)).toBe('v2');
    expect(await cache.load('key:revoked', refused)).toBeNull();
    expect(cache.stats.staleServed).toBe(2);
    // Never seen: nothing to serve.
    await expect(cache.load('key:new', refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('after finding the database unreachable, serves expired entries without asking it again for a second', async () => {
    const cache = new RegistryCache({ ttlMs: 10, staleMs: 60_000 });
    await cache.load('a', async () => 'v1');
    await cache.load('b', async () => 'w1');
    await sleep(30);
    let asked = 0;
    const counted = () => {
      asked++;
      return refused();
    };
    expect(await cache.load('a', counted)).toBe('v1');
    expect(await cache.load('b', counted)).toBe('w1');
    expect(asked).toBe(1);
    await sleep(1100);
    expect(await cache.load('a', async () => 'v2')).toBe('v2'); // asked again: it answers
  });

  it('serves stale entries at most staleMs past their expiry, never after an invalidation, never with staleMs 0', async () => {
    const bounded = new RegistryCache({ ttlMs: 10, staleMs: 50 });
    await bounded.load('k', async () => 'v');
    await sleep(100);
    await expect(bounded.load('k', refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const invalidated = new RegistryCache({ ttlMs: 10, staleMs: 60_000 });
    await invalidated.load('k', async () => 'v');
    invalidated.invalidate();
    await expect(invalidated.load('k', refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const off = new RegistryCache({ ttlMs: 10, staleMs: 0 });
    await off.load('k', async () => 'v');
    await sleep(30);
    await expect(off.load('k', refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('keeps memory bounded by maxEntries, stale entries included', async () => {
    const cache = new RegistryCache({ maxEntries: 3, ttlMs: 1, staleMs: 60_000 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) await cache.load(k, async () => k);
    expect(cache.size).toBe(3);
    await sleep(10);
    await expect(cache.load('a', refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' }); // evicted
    expect(await cache.load('e', refused)).toBe('e');
  });

  it('lets per-request loaders serve what was known and fail only the keys never seen', async () => {
    const cache = new RegistryCache({ ttlMs: 10, staleMs: 60_000 });
    cache.store(cache.begin(), 'tenant:acme', tenant);
    cache.store(cache.begin(), 'tenant:gone', null);
    await sleep(30);
    const loaders = new RegistryLoaders(unreachable.prisma, cache);
    const [known, gone, never] = await Promise.allSettled([loaders.tenant.load('acme'), loaders.tenant.load('gone'), loaders.tenant.load('never')]);
    expect(known).toEqual({ status: 'fulfilled', value: tenant });
    expect(gone).toEqual({ status: 'fulfilled', value: null });
    expect(never.status).toBe('rejected');
    expect(isDatabaseUnavailable((never as PromiseRejectedResult).reason)).toBe(true);
  });

  it('gives the invoke hot path a fresh row at once, and an expired one only through its loader', async () => {
    const cache = new RegistryCache({ ttlMs: 50, staleMs: 60_000 });
    cache.store(cache.begin(), 'tenant:acme', tenant);
    const loaders = new RegistryLoaders(unreachable.prisma, cache);
    expect(loaders.tenantNow('acme')).toBe(tenant); // the row itself, not a promise
    await sleep(80);
    const expired = loaders.tenantNow('acme');
    expect(expired).toBeInstanceOf(Promise);
    expect(await expired).toBe(tenant); // the loader found no database and served it stale
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1, staleServed: 1 });
  });
});

describe('registry cache on the invoke hot path', () => {
  it('fresh() answers a hit only, and counts no miss (the loader behind it counts that)', () => {
    const cache = new RegistryCache({ ttlMs: 10, staleMs: 60_000 });
    cache.store(cache.begin(), 'tenant:acme', tenant, 0);
    cache.store(cache.begin(), 'tenant:gone', null, 0);
    expect(cache.fresh('tenant:acme', 5)).toBe(tenant);
    expect(cache.fresh('tenant:gone', 5)).toBeNull(); // a known absence is a hit
    expect(cache.fresh('tenant:never', 5)).toBeUndefined();
    expect(cache.fresh('tenant:acme', 10)).toBeUndefined(); // expired: only get() may serve it stale
    expect(cache.stats).toMatchObject({ hits: 2, misses: 0, staleServed: 0 });
  });
});

// Eviction when full: the clock (second chance). What is read between two turns of the hand stays;
// what is not goes first; the bound holds whatever the mix of stores, reloads, hits and expiries.
describe('registry cache eviction', () => {
  const put = (cache: RegistryCache, key: string, value: unknown, now?: number) => cache.store(cache.begin(), key, value, now);
  const present = (cache: RegistryCache, keys: string[], now?: number) => keys.filter((k) => cache.get(k, now) !== undefined);

  it('keeps an entry that is read while the cache fills, and evicts the ones not read', () => {
    const cache = new RegistryCache({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) put(cache, k, k);
    for (const k of ['d', 'e', 'f', 'g', 'h']) {
      expect(cache.get('a')).toBe('a'); // in use between every two stores
      put(cache, k, k);
      expect(cache.size).toBe(3);
    }
    // Left: 'a' (read throughout) and the two newest; the rest went in the order they came.
    expect(present(cache, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])).toEqual(['a', 'g', 'h']);
  });

  it('updates a reloaded key in place: one entry per key, and nothing else evicted', () => {
    const cache = new RegistryCache({ maxEntries: 2 });
    put(cache, 'a', 1);
    put(cache, 'b', 1);
    for (let v = 2; v <= 50; v++) put(cache, 'a', v);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBe(50);
    expect(cache.get('b')).toBe(1);
  });

  it('reuses the slot of a key that was stored again elsewhere, without evicting that key', () => {
    const cache = new RegistryCache({ maxEntries: 3, ttlMs: 1, staleMs: 1 });
    put(cache, 'x', 'x', 4);
    put(cache, 'a', 'a', 0);
    put(cache, 'y', 'y', 4);
    expect(cache.get('a', 3)).toBeUndefined(); // past its stale window: dropped
    put(cache, 'a', 'a', 3); // evicts x; its first slot still names 'a'
    put(cache, 'z', 'z', 3); // takes that slot: 'a' lives in x's
    expect(cache.size).toBe(3);
    expect(present(cache, ['a', 'x', 'y', 'z'], 3)).toEqual(['a', 'y', 'z']);
  });

  it('matches a plain map of the last stored values, within maxEntries, over random operations and invalidations', () => {
    let seed = 7;
    const random = (n: number) => (seed = (seed * 48_271) % 2_147_483_647) % n; // exact in doubles
    const max = 16;
    // ttl 10 and staleMs 5 on a clock that we move: entries expire, and some pass the stale window
    const cache = new RegistryCache({ maxEntries: max, ttlMs: 10, staleMs: 5 });
    const last = new Map<string, { value: number; expires: number }>();
    let now = 0;
    let hits = 0;
    for (let i = 0; i < 20_000; i++) {
      const key = `k${random(40)}`;
      if (random(100) === 0) {
        // A load that began before an invalidation stores nothing after it.
        const before = cache.begin();
        cache.invalidate();
        last.clear();
        cache.store(before, key, -1, now);
      } else if (random(3) === 0) {
        put(cache, key, i, now);
        last.set(key, { value: i, expires: now + 10 });
      } else {
        const got = random(2) ? cache.get<number>(key, now) : cache.fresh<number>(key, now);
        // A hit is always the last value stored for the key, and never an expired one.
        if (got !== undefined) {
          hits++;
          expect(last.has(key)).toBe(true);
          expect(got).toBe(last.get(key)!.value);
          expect(last.get(key)!.expires).toBeGreaterThan(now);
        }
      }
      expect(cache.size).toBeLessThanOrEqual(max);
      if (random(50) === 0) now += random(12);
    }
    expect(hits).toBeGreaterThan(1000); // the cache did hold things
  });
});

// Shared limits (issue 6): two hub processes on one PostgreSQL database and one Redis count invoke
// quotas and failed authentications together; without HUB_REDIS_URL each process counts its own
// (documented); with Redis unreachable invokes go on, limited per process, and the fallback is
// counted. Redis is never skipped: when it does not answer at HUB_TEST_REDIS_URL the suite fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLimiter } from '../src/access/redis-limiter.js';
import { parseConfig } from '../src/config.js';
import { clientFrom, waitFor, type AddressedClient } from './helpers/attack-kit.js';
import { RUN_ID, testDatabases, type DbKind } from './helpers/databases.js';
import { expectData, expectError } from './helpers/registry-snapshot.js';
import { INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const REDIS_URL = process.env.HUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const VIEWER = `{ viewer { role caller { id } } }`;
const badKey = (i: number) => `thub_${String(i).padStart(43, 'y')}`;

// Where a test needs every verdict from Redis, a stall of the loaded machine must not pass for an
// unanswered command (the 200 ms default would turn it into a counted fallback). A stopped Redis
// still fails at once: the connection is closed and commands are not queued.
const PATIENT_MS = '2000';
/** A fresh key prefix per hub pair: test runs side by side on one Redis never share a counter. */
const freshPrefix = () => `thub-test:${RUN_ID}:${randomUUID()}:`;

async function requireRedis(): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis is required by this suite and did not answer at ${REDIS_URL} (set HUB_TEST_REDIS_URL): ${String(error)}`);
  }
  return redis;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Two hubs on one database, with the same admin and encryption keys (as two replicas would be). */
async function startPair(kind: DbKind, env: Record<string, string>): Promise<[TestHub, TestHub]> {
  const shared = { HUB_ADMIN_KEY: `test-admin-${randomBytes(24).toString('hex')}`, HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64'), ...env };
  const a = await startTestHub(kind, { env: shared });
  try {
    const b = await startTestHub(kind, { env: shared, db: a.db });
    return [a, b];
  } catch (error) {
    await a.close();
    throw error;
  }
}

async function createCaller(hub: TestHub, id: string, quotaPerMinute: number): Promise<string> {
  const created = await hub.admin(`mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey } }`, {
    i: { id, name: id, tenantId: 'acme', quotaPerMinute },
  });
  await hub.admin(`mutation($i: GrantInput!) { grant(input: $i) { id } }`, { i: { callerId: id, tenantId: 'acme', systemId: 'crm' } });
  return created.createCaller.apiKey as string;
}

const invoke = (hub: TestHub, key: string, path: string) => hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path } }, { key });
const ok = (res: GqlResponse) => expect(expectData(res).invoke.status).toBe(200);
function expectLimited(res: GqlResponse): number {
  const error = expectError(res, 'RATE_LIMITED');
  const retryAfterMs = error.extensions!.retryAfterMs as number;
  expect(retryAfterMs).toBeGreaterThan(0);
  expect(retryAfterMs).toBeLessThanOrEqual(60_000);
  return retryAfterMs;
}
async function metric(hub: TestHub, line: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

// Two hubs over one database need a database both can open: PostgreSQL (an embedded PGlite
// belongs to one process).
describe.runIf(testDatabases().includes('postgres'))('shared limits: two hubs, one PostgreSQL, one Redis', () => {
  let redis: Redis;
  let up: Upstream;
  let a: TestHub;
  let b: TestHub;
  let prefix: string;
  const clients: AddressedClient[] = [];
  const received = (who: string) => up.requests.filter((r) => r.url.startsWith(`/crm/${who}/`)).length;

  beforeAll(async () => {
    redis = await requireRedis();
    up = await startUpstream();
    prefix = freshPrefix();
    [a, b] = await startPair('postgres', { HUB_REDIS_URL: REDIS_URL, HUB_REDIS_PREFIX: prefix, HUB_REDIS_TIMEOUT_MS: PATIENT_MS, HUB_QUOTA_PER_MINUTE: '1000', HUB_AUTH_FAILURES_PER_MINUTE: '3' });
    await seedExclusive(a, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm`, token: 'crm-token' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await b?.close();
    await a?.close();
    await up?.close();
    redis?.disconnect();
  });

  it('both hubs report shared limits in Redis at start-up', () => {
    for (const hub of [a, b]) expect(hub.logs.some((l) => l.includes('shared limits in redis'))).toBe(true);
  });

  it('a quota spent on A is seen by B: 3 invokes on A and 2 on B, then the 6th is RATE_LIMITED on either', async () => {
    const key = await createCaller(a, 'shared-q', 5);
    for (let i = 1; i <= 3; i++) ok(await invoke(a, key, `/shared-q/a${i}`));
    for (let i = 1; i <= 2; i++) ok(await invoke(b, key, `/shared-q/b${i}`));
    const onA = expectLimited(await invoke(a, key, '/shared-q/a6'));
    const onB = expectLimited(await invoke(b, key, '/shared-q/b6'));
    expect(onB).toBeLessThanOrEqual(onA);
    expect(received('shared-q')).toBe(5);
    expect(await metric(a, 'hub_limiter_fallbacks_total{limiter="quota"}')).toBe(0);
    expect(await metric(b, 'hub_limiter_fallbacks_total{limiter="quota"}')).toBe(0);
  });

  it('keys live under the prefix, hashed (no caller id or address in Redis), and expire with the window', async () => {
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(k).toMatch(new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(quota|auth):[A-Za-z0-9_-]{32}$`));
      expect(k).not.toContain('shared-q');
      expect(k).not.toContain('127.0.0');
      const ttl = await redis.pttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  });

  it('failed authentications from one address on A throttle that address on B too; other addresses go on', async () => {
    const key = await createCaller(a, 'shared-auth', 100);
    const attackerOnA = clientFrom(a, '127.0.0.7');
    const attackerOnB = clientFrom(b, '127.0.0.7');
    const neighbourOnB = clientFrom(b, '127.0.0.8');
    clients.push(attackerOnA, attackerOnB, neighbourOnB);
    expect(expectData(await attackerOnB.gql(VIEWER, {}, { key })).viewer.caller.id).toBe('shared-auth'); // control
    for (let i = 0; i < 2; i++) expect((await attackerOnA.gql(VIEWER, {}, { key: badKey(i) })).status).toBe(401);
    expect((await attackerOnB.gql(VIEWER, {}, { key: badKey(2) })).status).toBe(401);
    for (const attacker of [attackerOnB, attackerOnA]) {
      const blocked = await attacker.gql(VIEWER, {}, { key }); // a valid key, from a throttled address
      expect(blocked.status).toBe(429);
      expect(blocked.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(expectData(await neighbourOnB.gql(VIEWER, {}, { key })).viewer.caller.id).toBe('shared-auth');
  });
});

// The same promise with real operating-system processes, as deployed: `node src/main.ts` twice.
describe.runIf(testDatabases().includes('postgres'))('shared limits: two hub processes (src/main.ts)', () => {
  const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
  let up: Upstream;
  let db: TestDatabase;
  let dataDir: string;
  const procs: HubProcess[] = [];
  const urls: string[] = [];

  /** A minimal TestHub over a child process: what seedExclusive and createCaller use. */
  const remote = (url: string) => {
    const gql = async (query: string, variables?: Record<string, unknown>, o: { key?: string | null } = {}) => {
      const key = o.key === undefined ? adminKey : o.key;
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as GqlResponse['body'] };
    };
    const admin = async (query: string, variables?: Record<string, unknown>) => {
      const res = await gql(query, variables);
      if (res.body.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(res.body.errors)}`);
      return res.body.data as any;
    };
    return { url, gql, admin } as unknown as TestHub;
  };

  beforeAll(async () => {
    (await requireRedis()).disconnect();
    up = await startUpstream();
    db = await createTestDatabase('postgres');
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-procs-'));
    const env = {
      HUB_HOST: '127.0.0.1',
      DATABASE_URL: db.url!,
      HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      HUB_ADMIN_KEY: adminKey,
      HUB_DATA_DIR: dataDir,
      HUB_LOG_LEVEL: 'warn',
      HUB_REDIS_URL: REDIS_URL,
      HUB_REDIS_PREFIX: freshPrefix(),
      HUB_REDIS_TIMEOUT_MS: PATIENT_MS,
    };
    for (let i = 0; i < 2; i++) {
      const child = await startHubProcess(env);
      procs.push(child);
      urls.push(child.url);
    }
  }, 150_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    await up?.close();
  });

  it('a quota spent on process A is seen by process B, and both drain cleanly on SIGTERM', async () => {
    const [a, b] = urls.map(remote) as [TestHub, TestHub];
    await seedExclusive(a, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm` });
    const key = await createCaller(a, 'procs-q', 5);
    for (let i = 1; i <= 3; i++) ok(await invoke(a, key, `/procs-q/a${i}`));
    for (let i = 1; i <= 2; i++) ok(await invoke(b, key, `/procs-q/b${i}`));
    expectLimited(await invoke(b, key, '/procs-q/b6'));
    expectLimited(await invoke(a, key, '/procs-q/a6'));
    expect(up.requests.filter((r) => r.url.startsWith('/crm/procs-q/'))).toHaveLength(5);
    for (const p of procs) expect(await p.stop(), p.lines.join('\n')).toBe(0);
  }, 60_000);
});

describe.runIf(testDatabases().includes('postgres'))('limits without HUB_REDIS_URL: per process (documented)', () => {
  let up: Upstream;
  let a: TestHub;
  let b: TestHub;

  beforeAll(async () => {
    up = await startUpstream();
    [a, b] = await startPair('postgres', { HUB_QUOTA_PER_MINUTE: '1000' });
    await seedExclusive(a, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm` });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await up?.close();
  });

  it('each of two hubs allows the full quota: 5 on A and 5 on B, then the 6th on each is RATE_LIMITED', async () => {
    const key = await createCaller(a, 'local-q', 5);
    for (let i = 1; i <= 5; i++) ok(await invoke(a, key, `/local-q/a${i}`));
    for (let i = 1; i <= 5; i++) ok(await invoke(b, key, `/local-q/b${i}`));
    expectLimited(await invoke(a, key, '/local-q/a6'));
    expectLimited(await invoke(b, key, '/local-q/b6'));
    expect(up.requests.filter((r) => r.url.startsWith('/crm/local-q/'))).toHaveLength(10);
    expect(a.logs.some((l) => l.includes('redis'))).toBe(false);
  });
});

describe.each(testDatabases())('Redis unreachable on %s', (kind) => {
  let up: Upstream;
  let hub: TestHub;

  beforeAll(async () => {
    up = await startUpstream();
    const port = await closedPort();
    hub = await startTestHub(kind, {
      env: { HUB_REDIS_URL: `redis://127.0.0.1:${port}/0`, HUB_REDIS_PREFIX: freshPrefix(), HUB_QUOTA_PER_MINUTE: '1000', HUB_AUTH_FAILURES_PER_MINUTE: '2' },
    });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm` });
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  it('the hub starts and says the limits are per process', () => {
    expect(hub.logs.some((l) => l.includes('redis not reachable at start-up'))).toBe(true);
  });

  it('invokes still work, the quota is enforced in the process, and every fallback is counted', async () => {
    const before = await metric(hub, 'hub_limiter_fallbacks_total{limiter="quota"}');
    const key = await createCaller(hub, 'fallback-q', 3);
    for (let i = 1; i <= 3; i++) ok(await invoke(hub, key, `/fallback-q/${i}`));
    expectLimited(await invoke(hub, key, '/fallback-q/4'));
    expect(up.requests.filter((r) => r.url.startsWith('/crm/fallback-q/'))).toHaveLength(3);
    expect(await metric(hub, 'hub_limiter_fallbacks_total{limiter="quota"}')).toBe(before + 4);
    // one verdict per authenticated request (the admin's included) went through the fallback
    expect(await metric(hub, 'hub_limiter_fallbacks_total{limiter="auth"}')).toBeGreaterThanOrEqual(4);
    // a warning, not one per call
    expect(hub.logs.filter((l) => l.includes('redis did not answer')).length).toBe(1);
  });

  it('the failed-authentication throttle falls back too', async () => {
    const attacker = clientFrom(hub, '127.0.0.9');
    try {
      for (let i = 0; i < 2; i++) expect((await attacker.gql(VIEWER, {}, { key: badKey(i) })).status).toBe(401);
      expect((await attacker.gql(VIEWER, {}, { key: hub.adminKey })).status).toBe(429);
    } finally {
      await attacker.close();
    }
  });
});

// The limiter itself against a real Redis: its Lua script keeps counts exact under concurrency.
describe('RedisLimiter on a real Redis', () => {
  let one: Redis;
  let two: Redis;
  beforeAll(async () => {
    [one, two] = [await requireRedis(), await requireRedis()];
  });
  afterAll(() => {
    one?.disconnect();
    two?.disconnect();
  });

  it('two connections hitting one key at once: exactly the limit is allowed, and the refusals carry the window left', async () => {
    const opts = { name: 'quota', prefix: freshPrefix(), windowMs: 60_000, onFallback: (_: string, error: unknown) => { throw error; } };
    const [x, y] = [new RedisLimiter(one, opts), new RedisLimiter(two, opts)];
    const verdicts = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? x : y).hit('caller-1', 10)));
    expect(verdicts.filter((v) => v.allowed)).toHaveLength(10);
    for (const v of verdicts.filter((v) => !v.allowed)) {
      expect(v.retryAfterMs).toBeGreaterThan(0);
      expect(v.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    expect((await y.check('caller-1', 10)).allowed).toBe(false);
    expect((await y.check('caller-1', 11)).allowed).toBe(true);
    expect((await x.hit('caller-2', 10)).allowed).toBe(true); // keys apart
  });

  it('a short window ends: the key expires and counting starts again', async () => {
    const opts = { name: 'auth', prefix: freshPrefix(), windowMs: 2000, onFallback: (_: string, error: unknown) => { throw error; } };
    const limiter = new RedisLimiter(one, opts);
    expect((await limiter.hit('10.0.0.1', 1)).allowed).toBe(true);
    const refused = await limiter.hit('10.0.0.1', 1);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(2000);
    await new Promise((resolve) => setTimeout(resolve, refused.retryAfterMs + 50));
    expect((await limiter.hit('10.0.0.1', 1)).allowed).toBe(true);
  });
});

// A Redis that goes away and comes back while the hub runs: a private redis-server on its own port
// (the shared one is not ours to stop). Needs the redis-server program, as CI has.
const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

describe.runIf(hasRedisServer)('a Redis outage while the hub runs', () => {
  let up: Upstream;
  let hub: TestHub;
  let port: number;
  let server: ChildProcess | undefined;

  async function startRedisServer() {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const probe = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    await waitFor('redis-server up', () => probe.connect().then(() => true, () => false), 10_000, 100);
    probe.disconnect();
  }
  async function stopRedisServer() {
    const s = server;
    server = undefined;
    if (!s || s.exitCode !== null) return;
    const exited = new Promise((resolve) => s.once('exit', resolve));
    s.kill('SIGKILL');
    await exited;
  }

  beforeAll(async () => {
    up = await startUpstream();
    port = await closedPort();
    await startRedisServer();
    hub = await startTestHub(testDatabases()[0]!, {
      env: { HUB_REDIS_URL: `redis://127.0.0.1:${port}`, HUB_REDIS_PREFIX: freshPrefix(), HUB_REDIS_TIMEOUT_MS: PATIENT_MS, HUB_QUOTA_PER_MINUTE: '1000' },
    });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm` });
  });
  afterAll(async () => {
    await hub?.close();
    await stopRedisServer();
    await up?.close();
  });

  it('shared before, per process during the outage (counted), shared again once Redis is back', async () => {
    const fallbacks = () => metric(hub, 'hub_limiter_fallbacks_total{limiter="quota"}');
    const key = await createCaller(hub, 'outage-q', 3);
    ok(await invoke(hub, key, '/outage-q/1'));
    ok(await invoke(hub, key, '/outage-q/2'));
    expect(await fallbacks()).toBe(0);

    await stopRedisServer();
    // The process's own counters start from zero: the documented cost of staying available.
    for (let i = 3; i <= 5; i++) ok(await invoke(hub, key, `/outage-q/${i}`));
    expectLimited(await invoke(hub, key, '/outage-q/6'));
    expect(await fallbacks()).toBe(4);
    expect(hub.logs.some((l) => l.includes('redis did not answer'))).toBe(true);

    await startRedisServer(); // empty: no persistence
    await waitFor('the hub reconnected', () => hub.logs.some((l) => l.includes('limits are shared again')), 15_000, 100);
    for (let i = 7; i <= 9; i++) ok(await invoke(hub, key, `/outage-q/${i}`));
    expectLimited(await invoke(hub, key, '/outage-q/10'));
    expect(await fallbacks()).toBe(4);
  }, 60_000);
});

describe('Redis settings', () => {
  it('HUB_REDIS_URL must be redis:// or rediss://; prefix and timeout have defaults', () => {
    expect(() => parseConfig({ HUB_REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(/HUB_REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(() => parseConfig({ HUB_REDIS_TIMEOUT_MS: '0' })).toThrow(/HUB_REDIS_TIMEOUT_MS/);
    expect(parseConfig({}).redis).toEqual({ url: undefined, prefix: 'thub:', commandTimeoutMs: 200 });
    expect(parseConfig({ HUB_REDIS_URL: 'rediss://:pw@redis.internal:6380/2', HUB_REDIS_PREFIX: 'hub-eu:' }).redis).toEqual({
      url: 'rediss://:pw@redis.internal:6380/2',
      prefix: 'hub-eu:',
      commandTimeoutMs: 200,
    });
  });
});

// The hub's own PostgreSQL going away, on a server this test starts, crashes (`pg_ctl stop -m
// immediate`) and starts again itself. While it is gone: warm routes keep working from the
// registry cache past its TTL, revocations seen before stay in force, what needs the database is
// SERVICE_UNAVAILABLE, /readyz 503 and /healthz 200, invocation records are buffered up to a bound
// and then calls are refused. Afterwards: the buffered records are written, in order, with the
// chain intact, and everything works without restarting the hub. (The embedded PGlite lives in the
// hub's own process and cannot become unreachable, so this runs on PostgreSQL only.)
import { createServer, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { createLogger } from '../src/log.js';
import { isDatabaseUnavailable } from '../src/utils/database-errors.js';
import { testDatabases } from './helpers/databases.js';
import { startOwnPostgres, type OwnPostgres } from './helpers/own-postgres.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import type { TestDatabase } from './helpers/test-database.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const onPostgres = testDatabases().includes('postgres');
const TTL_MS = 200;
const BUFFER_MAX = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The own server as a TestDatabase for startTestHub (the hub migrates it at start). */
function ownDatabase(server: OwnPostgres): TestDatabase {
  const pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on('error', () => {}); // idle connections die with the server
  return {
    kind: 'postgres',
    url: server.url,
    query: async <T>(sql: string, params: unknown[] = []) => (await pool.query(sql, params)).rows as T[],
    drop: () => pool.end(),
  };
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe.runIf(onPostgres)('database outage on an own PostgreSQL server', () => {
  let server: OwnPostgres;
  let db: TestDatabase;
  let hub: TestHub;
  let upstream: Upstream;
  let callerKey: string;
  let revokedKey: string;
  /** requestIds of the records made while the database was down, in the order they were made */
  const madeDuringOutage: { requestId: string; code: string | null }[] = [];

  const invoke = (path: string, key = callerKey, t = 'acme', s = 'crm') => hub.gql(INVOKE_QUERY, { t, s, p: { path } }, { key });
  const metric = async (name: string) => {
    const text = await (await fetch(`${hub.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };

  beforeAll(async () => {
    server = await startOwnPostgres();
    db = ownDatabase(server);
    upstream = await startUpstream();
    hub = await startTestHub('postgres', { db, env: { HUB_CACHE_TTL_MS: String(TTL_MS), HUB_AUDIT_BUFFER_MAX: String(BUFFER_MAX) } });
  });
  afterAll(async () => {
    // The server is restarted (if a test failed mid-outage) so the hub can close cleanly, then removed.
    await server?.start().catch(() => {});
    await hub?.close().catch(() => {});
    await db?.drop().catch(() => {});
    await upstream?.close();
    await server?.destroy();
  });

  it('warms the cache before the outage', async () => {
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: upstream.url, token: 'crm-token' });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: upstream.url, token: 'globex-token' });
    await hub.admin(`mutation { createSystem(input: { id: "unbound", name: "unbound", mode: EXCLUSIVE }) { id } }`);
    callerKey = await createCallerWithGrant(hub, { id: 'portal', grants: [{ tenantId: 'acme' }, { tenantId: 'globex' }] });
    const issued = await hub.admin(`mutation { issueApiKey(callerId: "portal") { apiKey key { id } } }`);
    revokedKey = issued.issueApiKey.apiKey;
    await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`, { id: issued.issueApiKey.key.id });
    // After the last registry write (which empties the cache): what the hub gets to know.
    expect((await invoke('/before', revokedKey)).status).toBe(401);
    expect((await invoke('/before')).body.data.invoke.status).toBe(200);
    // A known absence: "unbound" is not bound to acme.
    const absent = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'unbound', p: { path: '/x' } });
    expect(absent.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect((await hub.gql(`{ viewer { role } }`)).body.data.viewer.role).toBe('ADMIN');
    await hub.hub.audit.flush();
    expect((await fetch(`${hub.url}/readyz`)).status).toBe(200);
  });

  it('keeps serving known routes, refusing revoked keys and answering SERVICE_UNAVAILABLE for the rest while the database is down', async () => {
    await server.stop();
    await sleep(TTL_MS * 2); // every cache entry is now past its TTL

    const sentBefore = upstream.requests.length;
    const warm = await invoke('/during/1');
    expect(warm.body.errors).toBeUndefined();
    expect(warm.body.data.invoke.status).toBe(200);
    expect(upstream.requests.length).toBe(sentBefore + 1);
    expect(upstream.requests.at(-1)!.url).toBe('/during/1');
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer crm-token');
    madeDuringOutage.push({ requestId: warm.body.data.invoke.requestId, code: null });

    // The revocation seen before the outage stays in force.
    const revoked = await invoke('/during/revoked', revokedKey);
    expect(revoked.status).toBe(401);
    expect(revoked.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // A key never seen: it cannot be checked, so nothing runs.
    const unknown = await invoke('/during/unknown', 'thub_' + 'x'.repeat(43));
    expect(unknown.status).toBe(503);
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    // A known absence stays an absence; a route never looked up needs the database.
    const absent = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'unbound', p: { path: '/x' } });
    expect(absent.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    madeDuringOutage.push({ requestId: absent.body.errors![0]!.extensions!.requestId, code: 'NOT_FOUND' });
    const cold = await invoke('/during/cold', callerKey, 'globex');
    expect(cold.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    madeDuringOutage.push({ requestId: cold.body.errors![0]!.extensions!.requestId, code: 'SERVICE_UNAVAILABLE' });
    // An admin query that needs the database: a field error, HTTP 200 (the admin key is known).
    const list = await hub.gql(`{ tenants { totalCount } }`);
    expect(list.status).toBe(200);
    expect(list.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify([unknown.body, cold.body, list.body])).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|prisma|postgres/i);
    expect(upstream.requests.length).toBe(sentBefore + 1);

    expect((await fetch(`${hub.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${hub.url}/healthz`)).status).toBe(200);
    expect(await metric('hub_registry_cache_stale_served')).toBeGreaterThan(0);
    expect(await metric('hub_audit_buffer_depth')).toBe(madeDuringOutage.length);
  });

  it('refuses invokes once the audit buffer is full, without calling upstream, and keeps every record', async () => {
    for (let i = 2; !hub.hub.audit.full; i++) {
      const res = await invoke(`/during/${i}`);
      expect(res.body.data.invoke.status).toBe(200);
      madeDuringOutage.push({ requestId: res.body.data.invoke.requestId, code: null });
    }
    expect(await metric('hub_audit_buffer_depth')).toBe(BUFFER_MAX);
    const sentBefore = upstream.requests.length;
    const refusals = BUFFER_MAX + 3; // the first BUFFER_MAX refusals' records still fit, then 3 go to the log
    for (let i = 0; i < refusals; i++) {
      const res = await invoke(`/refused/${i}`);
      expect(res.status).toBe(200);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(res.body.errors?.[0]?.message).toMatch(/invocation records/);
      if (i < BUFFER_MAX) madeDuringOutage.push({ requestId: res.body.errors![0]!.extensions!.requestId, code: 'SERVICE_UNAVAILABLE' });
    }
    expect(upstream.requests.length).toBe(sentBefore);
    expect(await metric('hub_audit_refusals_total')).toBe(refusals);
    expect(await metric('hub_audit_buffer_depth')).toBe(2 * BUFFER_MAX);
    expect(await metric('hub_audit_records_unbuffered')).toBe(3);
    const logged = hub.logs.filter((l) => l.includes('invocation record not buffered')).map((l) => JSON.parse(l));
    expect(logged.map((l) => l.record.path)).toEqual([`/refused/${BUFFER_MAX}`, `/refused/${BUFFER_MAX + 1}`, `/refused/${BUFFER_MAX + 2}`]);
    expect(logged.every((l) => l.record.code === 'SERVICE_UNAVAILABLE')).toBe(true);
  });

  it('recovers without a restart: records written in order with the chain intact, everything works again', async () => {
    await server.start();
    await waitFor('/readyz 200', async () => (await fetch(`${hub.url}/readyz`)).status === 200);
    await waitFor('the audit buffer to drain', () => hub.hub.audit.pending === 0);

    const rows = await db.query<{ requestId: string; code: string | null }>(`SELECT "requestId", code FROM "Invocation" ORDER BY seq, index`);
    const tail = rows.slice(-madeDuringOutage.length);
    expect(tail).toEqual(madeDuringOutage);
    const chain = await hub.admin(`{ verifyInvocationChain { ok checked firstBrokenId } }`);
    expect(chain.verifyInvocationChain).toEqual({ ok: true, checked: rows.length, firstBrokenId: null });

    expect((await invoke('/after')).body.data.invoke.status).toBe(200);
    expect((await invoke('/after-cold', callerKey, 'globex')).body.data.invoke.status).toBe(200);
    expect((await invoke('/after', revokedKey)).status).toBe(401);
    expect((await invoke('/after', 'thub_' + 'x'.repeat(43))).status).toBe(401);
    const list = await hub.gql(`{ tenants { totalCount } }`);
    expect(list.body.errors).toBeUndefined();
    expect(list.body.data.tenants.totalCount).toBe(2);
    await hub.hub.audit.flush();
    expect((await hub.admin(`{ verifyInvocationChain { ok } }`)).verifyInvocationChain.ok).toBe(true);
  });
});

// A server that accepts connections and never answers (a hung host, a black-holed network) must
// count as unreachable after HUB_DB_CONNECT_TIMEOUT_MS instead of holding requests forever.
describe('a database server that never answers', () => {
  it('is unreachable after the connect timeout', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const db = await openDatabase({ url: `postgresql://postgres@127.0.0.1:${port}/x`, dataDir: '.', poolSize: 1, connectTimeoutMs: 300, log: createLogger('error', () => {}) });
    try {
      const error = await db.ping().then(() => undefined, (e: unknown) => e);
      expect(error).toBeDefined();
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(sockets.length).toBeGreaterThan(0); // it did connect, and got no answer
    } finally {
      await db.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

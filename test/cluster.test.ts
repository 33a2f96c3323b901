// Cluster mode: several hub processes (real OS processes) on one PostgreSQL. Everything one process
// promises must hold across them: a change through one is seen by the others within a second, a
// kill -9 of one loses nothing acknowledged by another, SIGTERM drains, concurrent start-ups on an
// empty database both come up. (The embedded PGlite serves one process: PostgreSQL only.)
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { eventually, startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { INVOKE_QUERY } from './helpers/seed.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const onPostgres = testDatabases().includes('postgres');

async function clusterEnv(db: TestDatabase, extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: db.url!,
    HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    HUB_ADMIN_KEY: `cluster-admin-${randomBytes(24).toString('hex')}`,
    HUB_DATA_DIR: await mkdtemp(path.join(tmpdir(), 'hub-cluster-')),
    ...extra,
  };
}

/** A loopback upstream whose /slow answers after ms (calls in flight at a kill or a SIGTERM). */
async function slowUpstream(ms: number): Promise<Upstream> {
  const upstream = await startUpstream();
  upstream.route('/slow', (req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ slow: true, url: req.url }));
    }, ms);
  });
  return upstream;
}

const must = <T>(res: { body: { data?: T; errors?: unknown[] } }): T => {
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors));
  return res.body.data!;
};

describe.runIf(onPostgres)('cluster on postgres', () => {
  describe('two processes started at once on an empty database', () => {
    let db: TestDatabase;
    const hubs: HubProcess[] = [];
    afterAll(async () => {
      await Promise.all(hubs.map((h) => h.stop()));
      await db?.drop();
    });

    it('both become ready, and every migration is applied exactly once', async () => {
      db = await createTestDatabase('postgres', { empty: true });
      const env = await clusterEnv(db);
      hubs.push(...(await Promise.all([startHubProcess(env), startHubProcess(env)])));
      for (const h of hubs) expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
      const applied = await db.query<{ migration_name: string; n: string }>(
        `SELECT migration_name, count(*) AS n FROM _prisma_migrations GROUP BY migration_name`,
      );
      expect(applied.length).toBeGreaterThan(1);
      for (const m of applied) expect(Number(m.n), m.migration_name).toBe(1);
      // Both work on the same registry.
      must(await hubs[0]!.gql(`mutation { createTenant(input: { id: "t1", name: "T1" }) { id } }`, {}, env.HUB_ADMIN_KEY));
      expect(must(await hubs[1]!.gql(`{ tenants { totalCount } }`, {}, env.HUB_ADMIN_KEY))).toEqual({ tenants: { totalCount: 1 } });
    });
  });

  describe('two processes behind one load balancer', () => {
    let db: TestDatabase;
    let upstream: Upstream;
    let a: HubProcess;
    let b: HubProcess;
    let admin: string;
    let env: Record<string, string>;
    let callerKey: string;
    let keyId: string;

    beforeAll(async () => {
      db = await createTestDatabase('postgres');
      upstream = await slowUpstream(600);
      // The TTL is long, so only the change feed can explain a change seen within a second.
      env = await clusterEnv(db, { HUB_CACHE_TTL_MS: '60000', HUB_DRAIN_DELAY_MS: '400' });
      admin = env.HUB_ADMIN_KEY!;
      [a, b] = await Promise.all([startHubProcess(env), startHubProcess(env)]);
      must(await a.gql(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`, {}, admin));
      must(await a.gql(`mutation { createSystem(input: { id: "crm", name: "CRM", mode: EXCLUSIVE }) { id } }`, {}, admin));
      must(
        await a.gql(`mutation($u: String!) { bindSystem(input: { tenantId: "acme", systemId: "crm", baseUrl: $u, credential: { kind: BEARER, token: "token-one" } }) { baseUrl } }`, { u: upstream.url }, admin),
      );
      const created = must(
        await a.gql<any>(`mutation { createCaller(input: { id: "portal", name: "Portal" }) { apiKey caller { apiKeys { id } } } }`, {}, admin),
      );
      callerKey = created.createCaller.apiKey;
      keyId = created.createCaller.caller.apiKeys[0].id;
      must(await a.gql(`mutation { grant(input: { callerId: "portal", tenantId: "acme" }) { id } }`, {}, admin));
    });
    afterAll(async () => {
      await Promise.all([a, b].map((h) => h?.stop()));
      await upstream?.close();
      await db?.drop();
    });

    const invokeOn = (h: HubProcess, p: string, key = callerKey) => h.gql<any>(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: p } }, key);

    it("uses a binding's token rotated through A on B's next calls, within a second", async () => {
      // The hub scrubs its token from echoed answers: what was sent is read at the upstream.
      const sentBy = async (p: string) => {
        expect((await invokeOn(b, p)).body.errors).toBeUndefined();
        return upstream.requests.at(-1)!.headers.authorization;
      };
      expect(await sentBy('/warm')).toBe('Bearer token-one');
      must(
        await a.gql(`mutation($u: String!) { bindSystem(input: { tenantId: "acme", systemId: "crm", baseUrl: $u, credential: { kind: BEARER, token: "token-two" } }) { baseUrl } }`, { u: upstream.url }, admin),
      );
      const rotated = Date.now();
      const seen = await eventually(async () => (await sentBy('/after-rotation')) === 'Bearer token-two', 1000);
      expect(seen, 'B still sends the old token a second after the rotation').toBe(true);
      expect(Date.now() - rotated).toBeLessThan(1000);
    });

    it('refuses on B a key revoked through A, within a second', async () => {
      expect((await invokeOn(b, '/before-revocation')).body.errors).toBeUndefined();
      must(await a.gql(`mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`, { id: keyId }, admin));
      const revoked = Date.now();
      const refused = await eventually(async () => (await invokeOn(b, '/after-revocation')).status === 401, 1000);
      expect(refused, 'B still accepts the revoked key a second later').toBe(true);
      expect(Date.now() - revoked).toBeLessThan(1000);
      // And stays refused.
      expect((await invokeOn(b, '/later')).status).toBe(401);
    });

    it('shares idempotency results: a repeat through B is answered from what A stored, without a second call', async () => {
      const keyed = (h: HubProcess, body: unknown) =>
        h.gql<any>(
          `mutation($p: InvokeParams!) { invoke(tenantId: "acme", systemId: "crm", params: $p) { status replayed requestId } }`,
          { p: { method: 'POST', path: '/orders', body, idempotencyKey: 'cluster-order-1' } },
          admin,
        );
      const first = await keyed(a, { n: 1 });
      expect(first.body.data.invoke).toMatchObject({ status: 200, replayed: false });
      const again = await keyed(b, { n: 1 });
      expect(again.body.data.invoke).toMatchObject({ status: 200, replayed: true, requestId: first.body.data.invoke.requestId });
      expect(upstream.requests.filter((r) => r.headers['idempotency-key'] === 'cluster-order-1')).toHaveLength(1);
      const other = await keyed(b, { n: 2 });
      expect(other.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });

    it('obtains one OAuth2 token for 100 concurrent calls spread over both processes', async () => {
      let tokenRequests = 0;
      upstream.route('/token', (_req, res) => {
        tokenRequests++;
        // A slow token endpoint: every process has time to ask for one if nothing stops it.
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ access_token: `cluster-at-${tokenRequests}`, token_type: 'Bearer', expires_in: 3600 }));
        }, 300);
      });
      must(await a.gql(`mutation { createSystem(input: { id: "erp", name: "ERP", mode: EXCLUSIVE }) { id } }`, {}, admin));
      must(
        await a.gql(
          `mutation($u: String!, $t: String!) { bindSystem(input: { tenantId: "acme", systemId: "erp", baseUrl: $u,
             credential: { kind: OAUTH2_CLIENT_CREDENTIALS, tokenUrl: $t, clientId: "hub", clientSecret: "cluster-client-secret" } }) { baseUrl } }`,
          { u: `${upstream.url}/erp`, t: `${upstream.url}/token` },
          admin,
        ),
      );
      const before = upstream.requests.filter((r) => r.url.startsWith('/erp')).length;
      const calls = Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).gql<any>(INVOKE_QUERY, { t: 'acme', s: 'erp', p: { path: `/c/${i}` } }, admin));
      const answers = await Promise.all(calls);
      for (const res of answers) expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
      expect(tokenRequests).toBe(1);
      const sent = upstream.requests.filter((r) => r.url.startsWith('/erp')).slice(before);
      expect(sent).toHaveLength(100);
      expect(new Set(sent.map((r) => r.headers.authorization))).toEqual(new Set(['Bearer cluster-at-1']));
    });

    it('keeps B serving when A is killed with SIGKILL under load, and loses nothing B acknowledged', async () => {
      const issued = must(await a.gql<any>(`mutation { issueApiKey(callerId: "portal") { apiKey } }`, {}, admin));
      callerKey = issued.issueApiKey.apiKey;
      const okIds: string[] = [];
      let afterKill = 0;
      let killed = false;
      const bErrors: string[] = [];
      const tenantsMade: string[] = [];
      let stop = false;
      const loadOn = async (h: HubProcess, record: boolean) => {
        for (let i = 0; !stop; i++) {
          try {
            const res = await invokeOn(h, `/load/${i}`);
            if (record) {
              if (res.body.errors || res.status !== 200) bErrors.push(JSON.stringify(res.body.errors ?? res.status));
              else {
                okIds.push(res.body.data.invoke.requestId);
                if (killed) afterKill++;
              }
            }
          } catch (error) {
            if (record) bErrors.push(String(error));
          }
        }
      };
      const writes = (async () => {
        for (let i = 0; !stop; i++) {
          const res = await b.gql(`mutation($i: CreateTenantInput!) { createTenant(input: $i) { id } }`, { i: { id: `k${i}`, name: `K${i}` } }, admin);
          if (!res.body.errors) tenantsMade.push(`k${i}`);
          else bErrors.push(JSON.stringify(res.body.errors));
        }
      })();
      const loads = [loadOn(b, true), loadOn(b, true), loadOn(a, false), loadOn(a, false)];
      await new Promise((r) => setTimeout(r, 700));
      await a.kill9();
      killed = true;
      await new Promise((r) => setTimeout(r, 1200));
      stop = true;
      await Promise.all([...loads, writes]);

      expect(bErrors).toEqual([]);
      expect(afterKill, 'B answered after A was killed').toBeGreaterThan(2);
      expect(tenantsMade.length).toBeGreaterThan(3);
      // B drains on SIGTERM: its records are flushed before it exits.
      expect(await b.stop()).toBe(0);
      const stored = await db.query<{ requestId: string }>(`SELECT "requestId" FROM "Invocation" WHERE "requestId" = ANY($1)`, [okIds]);
      expect(new Set(stored.map((r) => r.requestId)).size).toBe(okIds.length);
      const tenants = await db.query<{ id: string }>(`SELECT id FROM "Tenant" WHERE id = ANY($1)`, [tenantsMade]);
      expect(tenants).toHaveLength(tenantsMade.length);
      // The chain a killed writer may have interrupted is still whole (its transaction was rolled back).
      const c = await startHubProcess(env);
      try {
        expect(must(await c.gql<any>(`{ verifyInvocationChain { ok checked } }`, {}, admin)).verifyInvocationChain.ok).toBe(true);
      } finally {
        await c.stop();
      }
    });
  });

  describe('SIGTERM', () => {
    let db: TestDatabase;
    let upstream: Upstream;
    afterAll(async () => {
      await upstream?.close();
      await db?.drop();
    });

    it('turns /readyz to 503 first, finishes the calls in flight, flushes their records, exits 0', async () => {
      db = await createTestDatabase('postgres');
      // The calls outlast the drain delay, and the delay leaves a loaded machine time to see the 503.
      upstream = await slowUpstream(3000);
      const env = await clusterEnv(db, { HUB_DRAIN_DELAY_MS: '2000' });
      const h = await startHubProcess(env);
      const admin = env.HUB_ADMIN_KEY;
      must(await h.gql(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`, {}, admin));
      must(await h.gql(`mutation { createSystem(input: { id: "crm", name: "CRM", mode: EXCLUSIVE }) { id } }`, {}, admin));
      must(await h.gql(`mutation($u: String!) { bindSystem(input: { tenantId: "acme", systemId: "crm", baseUrl: $u }) { baseUrl } }`, { u: upstream.url }, admin));
      const inFlight = Array.from({ length: 5 }, (_, i) => h.gql<any>(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: `/slow/${i}` } }, admin));
      await eventually(async () => upstream.requests.filter((r) => r.url.startsWith('/slow')).length === 5, 5000);
      h.proc.kill('SIGTERM');
      const readyz = async () => (await fetch(`${h.url}/readyz`).catch(() => null))?.status;
      expect(await eventually(async () => (await readyz()) === 503, 1500)).toBe(true);
      const answers = await Promise.all(inFlight);
      for (const res of answers) {
        expect(res.body.errors).toBeUndefined();
        expect(res.body.data.invoke).toMatchObject({ status: 200, data: { slow: true } });
      }
      expect(await h.exited).toBe(0);
      const ids = answers.map((r) => r.body.data.invoke.requestId);
      const stored = await db.query(`SELECT 1 FROM "Invocation" WHERE "requestId" = ANY($1)`, [ids]);
      expect(stored).toHaveLength(5);
      // After the drain nothing listens any more.
      await expect(fetch(`${h.url}/healthz`)).rejects.toThrow();
    });
  });
});

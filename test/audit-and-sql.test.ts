// What the hub asks its database for (one query per table per request, no N+1) and what it keeps
// there: one tamper-evident Invocation record per invoke, refused or not, none lost at shutdown.
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { freePort } from './helpers/free-port.js';
import { deleteRecord, editRecord, firstOfRow } from './helpers/invocation-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { echo, startUpstream, type RecordedRequest, type Upstream } from './helpers/upstream.js';

const TENANTS = ['t1', 't2', 't3'];
const SYSTEMS = ['s1', 's2'];

/**
 * SELECT statements per table. A statement counts for the first table it reads FROM: Prisma's
 * statements look like `SELECT "public"."Tenant"."id", ... FROM "public"."Tenant" WHERE ...`
 * (a count: `SELECT COUNT(*) ... FROM (SELECT ... FROM "public"."Tenant" ...)`; raw SQL may leave
 * out "public"), so a join that reads a relation inside another table's statement is one lookup.
 */
function selectsByTable(statements: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sql of statements) {
    if (!/^\s*SELECT\b/i.test(sql)) continue;
    const table = /\bFROM\s+(?:"public"\.)?"([A-Za-z_]+)"/.exec(sql)?.[1];
    if (table) out[table] = (out[table] ?? 0) + 1;
  }
  return out;
}

/**
 * Runs fn on a cold registry cache and returns the SELECTs per table Prisma sent meanwhile (the
 * cold path is what these tests bound; test/registry-cache.test.ts covers the warm one).
 */
async function countSelects<T>(hub: TestHub, fn: () => Promise<T>): Promise<{ result: T; selects: Record<string, number>; sql: string[] }> {
  await hub.hub.audit.flush(); // earlier requests' records are written before we start counting
  hub.hub.cache.invalidate();
  const sql: string[] = [];
  const off = hub.hub.db.onQuery((s) => sql.push(s));
  try {
    const result = await fn();
    return { result, selects: selectsByTable(sql), sql };
  } finally {
    off();
  }
}

const n = (counts: Record<string, number>, table: string) => counts[table] ?? 0;

const NODE = '{ id createdAt callerId tenantId systemId method path status code durationMs requestId }';

async function listInvocations(hub: TestHub, args: { first?: number; after?: string | null; tenantId?: string; systemId?: string; callerId?: string } = {}, key?: string) {
  const res = await hub.gql(
    `query($first: Int, $after: String, $t: ID, $s: ID, $c: ID) {
      invocations(first: $first, after: $after, tenantId: $t, systemId: $s, callerId: $c) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node ${NODE} }
      }
    }`,
    { first: args.first ?? 500, after: args.after ?? null, t: args.tenantId, s: args.systemId, c: args.callerId },
    { key },
  );
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors));
  const c = res.body.data.invocations;
  return { totalCount: c.totalCount as number, pageInfo: c.pageInfo as { hasNextPage: boolean; endCursor: string | null }, nodes: c.edges.map((e: any) => e.node) as any[] };
}

async function seedGrid(hub: TestHub, up: Upstream) {
  for (const t of TENANTS) for (const s of SYSTEMS) await seedExclusive(hub, { tenantId: t, systemId: s, baseUrl: `${up.url}/${t}/${s}`, token: `token-${t}-${s}` });
}

describe.each(testDatabases())('audit and SQL on %s', (kind) => {
  let hub: TestHub;
  let up: Upstream;
  let auditorKey: string; // grants on every tenant
  let otherKey: string; // a grant on t1/s1 only

  beforeAll(async () => {
    up = await startUpstream();
    hub = await startTestHub(kind);
    await seedGrid(hub, up);
    auditorKey = await createCallerWithGrant(hub, { id: 'auditor', tenantId: 't1', grants: TENANTS.map((tenantId) => ({ tenantId })) });
    otherKey = await createCallerWithGrant(hub, { id: 'other', tenantId: 't2', grants: [{ tenantId: 't1', systemId: 's1' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  describe('SQL per request', () => {
    const pairs = TENANTS.flatMap((t) => SYSTEMS.map((s) => [t, s] as const));
    const sixInvokes = `{ ${pairs.map(([t, s]) => `${t}_${s}: invoke(tenantId: "${t}", systemId: "${s}", params: { path: "/x/${t}${s}" }) { status data }`).join('\n')} }`;

    async function checkSix(res: GqlResponse) {
      expect(res.body.errors).toBeUndefined();
      for (const [t, s] of pairs) expect(res.body.data[`${t}_${s}`]).toMatchObject({ status: 200, data: { url: `/${t}/${s}/x/${t}${s}` } });
    }

    it('looks up tenants, systems, bindings and grants of 6 invoke fields with one query per table', async () => {
      // What authentication alone costs with this key.
      const auth = await countSelects(hub, () => hub.gql(`{ viewer { role } }`, {}, { key: auditorKey }));
      expect(auth.result.body.data.viewer.role).toBe('CALLER');
      expect(n(auth.selects, 'ApiKey')).toBe(1); // the listener sees Prisma's statements
      const six = await countSelects(hub, () => hub.gql(sixInvokes, {}, { key: auditorKey }));
      await checkSix(six.result);
      const lookups = (table: string) => n(six.selects, table) - n(auth.selects, table);
      expect({ Tenant: lookups('Tenant'), System: lookups('System'), Binding: lookups('Binding'), Grant: lookups('Grant') }, six.sql.join('\n')).toEqual({
        Tenant: 1,
        System: 1,
        Binding: 1,
        Grant: 1,
      });
    });

    it('sends at most one SELECT per table for a whole request with 6 invoke fields, authentication included', async () => {
      const six = await countSelects(hub, () => hub.gql(sixInvokes, {}, { key: auditorKey }));
      await checkSix(six.result);
      const counts = Object.fromEntries(['ApiKey', 'Tenant', 'System', 'Binding', 'Grant'].map((t) => [t, n(six.selects, t)]));
      expect(n(six.selects, 'ApiKey')).toBe(1);
      for (const table of Object.keys(counts)) expect(counts[table], `SELECTs on ${table}:\n${six.sql.join('\n')}`).toBeLessThanOrEqual(1);
    });

    it('loads the bindings and systems of a page of tenants with one query each (no N+1)', async () => {
      const { result, selects, sql } = await countSelects(hub, () =>
        hub.admin(`{ tenants(first: 10) { edges { node { id bindings { baseUrl system { id } } } } } }`),
      );
      const nodes = result.tenants.edges.map((e: any) => e.node);
      expect(nodes.map((t: any) => t.id)).toEqual(TENANTS);
      for (const t of nodes) {
        expect(t.bindings).toEqual(SYSTEMS.map((s) => ({ baseUrl: `${up.url}/${t.id}/${s}`, system: { id: s } })));
      }
      expect({ Binding: n(selects, 'Binding'), System: n(selects, 'System') }, sql.join('\n')).toEqual({ Binding: 1, System: 1 });
    });

    it('loads the bindings and tenants of a page of systems with one query each (no N+1)', async () => {
      const auth = await countSelects(hub, () => hub.admin(`{ viewer { role } }`));
      const { result, selects, sql } = await countSelects(hub, () =>
        hub.admin(`{ systems(first: 10) { edges { node { id bindings { tenant { id name } } } } } }`),
      );
      const nodes = result.systems.edges.map((e: any) => e.node);
      expect(nodes.map((s: any) => s.id)).toEqual(SYSTEMS);
      for (const s of nodes) expect(s.bindings.map((b: any) => b.tenant.id)).toEqual(TENANTS);
      expect({ Binding: n(selects, 'Binding'), Tenant: n(selects, 'Tenant') - n(auth.selects, 'Tenant') }, sql.join('\n')).toEqual({ Binding: 1, Tenant: 1 });
    });
  });

  describe('one Invocation record per invoke', () => {
    let adminCallerId: string;
    beforeAll(async () => {
      adminCallerId = (await hub.admin(`{ viewer { caller { id } } }`)).viewer.caller.id;
      up.route('/t2/s2/rec/boom', (_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"boom"}');
      });
    });

    /** Runs one request and returns its GraphQL answer and the one record it left. */
    async function oneRecord(run: () => Promise<GqlResponse>) {
      const before = (await listInvocations(hub, { first: 1 })).totalCount;
      const res = await run();
      const after = await listInvocations(hub, { first: 2 });
      expect(after.totalCount - before).toBe(1);
      return { res, record: after.nodes[0] };
    }

    it('records a successful invoke with the InvokeResult requestId', async () => {
      const startedAt = Date.now();
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 't1', s: 's1', p: { path: '/rec/ok', query: { a: 1 } } }, { key: auditorKey }));
      expect(res.body.errors).toBeUndefined();
      const r = res.body.data.invoke;
      expect(record).toMatchObject({ callerId: 'auditor', tenantId: 't1', systemId: 's1', method: 'GET', path: '/rec/ok', status: 200, code: null, requestId: r.requestId });
      expect(record.durationMs).toBeGreaterThan(0);
      expect(Date.parse(record.createdAt)).toBeGreaterThanOrEqual(startedAt - 1000);
      expect(Date.parse(record.createdAt)).toBeLessThanOrEqual(Date.now() + 1000);
      // A time-ordered (version 7) id carrying the record's own millisecond: the id index grows at its end
      expect(record.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(parseInt(record.id.slice(0, 8) + record.id.slice(9, 13), 16)).toBe(Date.parse(record.createdAt));
    });

    it('records an upstream 500 as an answer (status set, no code)', async () => {
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 't2', s: 's2', p: { path: '/rec/boom' } }, { key: auditorKey }));
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 500, ok: false, data: { error: 'boom' } });
      expect(record).toMatchObject({ callerId: 'auditor', tenantId: 't2', systemId: 's2', method: 'GET', path: '/rec/boom', status: 500, code: null, requestId: res.body.data.invoke.requestId });
    });

    it('records a Mutation.invoke with its method', async () => {
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_MUTATION, { t: 't1', s: 's2', p: { method: 'PATCH', path: '/rec/patch', body: { a: 1 } } }, { key: auditorKey }));
      expect(res.body.errors).toBeUndefined();
      expect(record).toMatchObject({ callerId: 'auditor', tenantId: 't1', systemId: 's2', method: 'PATCH', path: '/rec/patch', status: 200, code: null, requestId: res.body.data.invoke.requestId });
    });

    it('records a FORBIDDEN invoke (no grant) with its code and no status', async () => {
      const sent = up.requests.length;
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 't3', s: 's1', p: { path: '/rec/forbidden' } }, { key: otherKey }));
      expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(up.requests.length).toBe(sent);
      expect(record).toMatchObject({ callerId: 'other', tenantId: 't3', systemId: 's1', method: 'GET', path: '/rec/forbidden', status: null, code: 'FORBIDDEN' });
      expect(record.requestId).toMatch(/\S/);
    });

    it('records a BAD_USER_INPUT path with the path as given', async () => {
      const sent = up.requests.length;
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 't1', s: 's1', p: { path: '/rec/../etc/passwd' } }, { key: auditorKey }));
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(up.requests.length).toBe(sent);
      expect(record).toMatchObject({ callerId: 'auditor', tenantId: 't1', systemId: 's1', method: 'GET', path: '/rec/../etc/passwd', status: null, code: 'BAD_USER_INPUT' });
    });

    it('records an unsafe method refused by Query.invoke', async () => {
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 't1', s: 's1', p: { method: 'DELETE', path: '/rec/delete' } }, { key: auditorKey }));
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(record).toMatchObject({ callerId: 'auditor', method: 'DELETE', path: '/rec/delete', status: null, code: 'BAD_USER_INPUT' });
    });

    it('records a NOT_FOUND invoke by an admin', async () => {
      const { res, record } = await oneRecord(() => hub.gql(INVOKE_QUERY, { t: 'ghost', s: 's1', p: { path: '/rec/ghost' } }));
      expect(res.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(record).toMatchObject({ callerId: adminCallerId, tenantId: 'ghost', systemId: 's1', method: 'GET', path: '/rec/ghost', status: null, code: 'NOT_FOUND' });
    });

    it('leaves one record per field of a multi-field document, refused fields included', async () => {
      const before = (await listInvocations(hub, { first: 1 })).totalCount;
      await hub.gql(
        `mutation {
          a: invoke(tenantId: "t1", systemId: "s1", params: { method: POST, path: "/multi/a" }) { status }
          b: invoke(tenantId: "t1", systemId: "s1", params: { method: GET, path: "/multi/b" }) { status }
        }`,
        {},
        { key: auditorKey },
      );
      await hub.gql(`{ c: invoke(tenantId: "t1", systemId: "s1", params: { path: "/multi/c" }) { status } d: invoke(tenantId: "t9", systemId: "s1", params: { path: "/multi/d" }) { status } }`, {}, { key: auditorKey });
      // (A refused Query.invoke field may let its sibling finish after the answer: wait a little.)
      let after = await listInvocations(hub, { first: 4 });
      for (let waited = 0; after.totalCount - before < 4 && waited < 3000; waited += 100) {
        await new Promise((r) => setTimeout(r, 100));
        after = await listInvocations(hub, { first: 4 });
      }
      expect(after.totalCount - before).toBe(4);
      expect(after.nodes.map((r) => r.path).sort()).toEqual(['/multi/a', '/multi/b', '/multi/c', '/multi/d']);
      expect(after.nodes.find((r) => r.path === '/multi/d')).toMatchObject({ tenantId: 't9', status: null, code: 'FORBIDDEN' });
    });
  });

  describe('listing records', () => {
    const marks = [
      { key: () => auditorKey, t: 't1', s: 's1', path: '/list/1' },
      { key: () => auditorKey, t: 't2', s: 's1', path: '/list/2' },
      { key: () => otherKey, t: 't1', s: 's1', path: '/list/3' },
      { key: () => auditorKey, t: 't1', s: 's2', path: '/list/4' },
      { key: () => auditorKey, t: 't3', s: 's2', path: '/list/5' },
    ];
    let all: any[];

    beforeAll(async () => {
      // One request after the other, so their order is known.
      for (const m of marks) {
        const res = await hub.gql(INVOKE_QUERY, { t: m.t, s: m.s, p: { path: m.path } }, { key: m.key() });
        expect(res.body.errors).toBeUndefined();
      }
      all = (await listInvocations(hub)).nodes;
    });

    it('lists records newest first', async () => {
      expect(all.slice(0, 5).map((r) => r.path)).toEqual(['/list/5', '/list/4', '/list/3', '/list/2', '/list/1']);
      for (let i = 1; i < all.length; i++) expect(Date.parse(all[i - 1].createdAt)).toBeGreaterThanOrEqual(Date.parse(all[i].createdAt));
      // the same as the table in insertion order, reversed
      const rows = await hub.db.query<{ id: string }>(`SELECT id FROM "Invocation" ORDER BY seq DESC, index DESC`);
      expect(all.map((r) => r.id)).toEqual(rows.map((r) => r.id));
    });

    it.each([
      { name: 'tenantId', filter: { tenantId: 't1' } },
      { name: 'systemId', filter: { systemId: 's2' } },
      { name: 'callerId', filter: { callerId: 'other' } },
      { name: 'all three', filter: { tenantId: 't1', systemId: 's1', callerId: 'auditor' } },
    ])('filters by $name', async ({ filter }) => {
      const page = await listInvocations(hub, filter);
      const f = filter as Record<string, string>;
      const expected = all.filter((r) => Object.entries(f).every(([k, v]) => r[k] === v));
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThan(all.length);
      expect(page.nodes.map((r) => r.id)).toEqual(expected.map((r) => r.id));
      expect(page.totalCount).toBe(expected.length);
    });

    it('pages with first/after without gaps or repeats', async () => {
      const seen: string[] = [];
      let after: string | null = null;
      for (let pages = 0; ; pages++) {
        expect(pages).toBeLessThan(50);
        const page = await listInvocations(hub, { first: 3, after });
        expect(page.nodes.length).toBeLessThanOrEqual(3);
        expect(page.totalCount).toBe(all.length);
        seen.push(...page.nodes.map((r) => r.id));
        if (!page.pageInfo.hasNextPage) break;
        expect(page.nodes).toHaveLength(3);
        after = page.pageInfo.endCursor;
        expect(after).toBeTruthy();
      }
      expect(seen).toEqual(all.map((r) => r.id));
      // with a filter too
      const t1 = all.filter((r) => r.tenantId === 't1').map((r) => r.id);
      const first = await listInvocations(hub, { tenantId: 't1', first: 2 });
      const second = await listInvocations(hub, { tenantId: 't1', first: 2, after: first.pageInfo.endCursor });
      expect([...first.nodes, ...second.nodes].map((r) => r.id)).toEqual(t1.slice(0, 4));
      expect(first.pageInfo.hasNextPage).toBe(true);
    });

    it('shows a caller only its own records', async () => {
      const own = await listInvocations(hub, {}, otherKey);
      const expected = all.filter((r) => r.callerId === 'other');
      expect(own.nodes.map((r) => r.id)).toEqual(expected.map((r) => r.id));
      expect((await listInvocations(hub, { callerId: 'auditor' }, otherKey)).nodes).toEqual([]);
    });
  });
});

describe.each(testDatabases())('invocation chain on %s', (kind) => {
  let hub: TestHub;
  let up: Upstream;

  beforeAll(async () => {
    up = await startUpstream();
    up.route('/c/boom', (_req, res) => {
      res.writeHead(500);
      res.end();
    });
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'c1', systemId: 'cs', baseUrl: `${up.url}/c`, token: 'chain-token' });
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  const verify = async () => (await hub.admin(`{ verifyInvocationChain { ok checked firstBrokenId } }`)).verifyInvocationChain;
  const rows = () => hub.db.query<{ id: string; status: number | null }>(`SELECT id, status FROM "Invocation" ORDER BY seq ASC, index ASC`);

  it('verifies, then finds an edited record and the record after a deleted one', async () => {
    await hub.gql(`{ a: invoke(tenantId: "c1", systemId: "cs", params: { path: "/a" }) { status } b: invoke(tenantId: "c1", systemId: "cs", params: { path: "/b" }) { status } }`);
    await hub.gql(INVOKE_QUERY, { t: 'c1', s: 'cs', p: { path: '/boom' } });
    await hub.gql(INVOKE_QUERY, { t: 'c1', s: 'cs', p: { path: '/c' } });
    await hub.gql(INVOKE_QUERY, { t: 'nobody', s: 'cs', p: { path: '/nf' } });
    await hub.gql(INVOKE_MUTATION, { t: 'c1', s: 'cs', p: { method: 'POST', path: '/d' } });
    await hub.gql(INVOKE_QUERY, { t: 'c1', s: 'cs', p: { path: '/e' } });

    const intact = await verify();
    const stored = await rows();
    expect(stored).toHaveLength(7);
    expect(intact).toEqual({ ok: true, checked: stored.length, firstBrokenId: null });

    // Edit one record in place.
    const edited = stored[3]!;
    expect(edited.status).toBe(200);
    await editRecord(hub.db, edited.id, 'status', 201);
    expect(await verify()).toMatchObject({ ok: false, firstBrokenId: await firstOfRow(hub.db, edited.id) });
    // Put it back: the chain is whole again.
    await editRecord(hub.db, edited.id, 'status', 200);
    expect(await verify()).toEqual({ ok: true, checked: stored.length, firstBrokenId: null });

    // Edit a refused record's code.
    const refused = stored.find((r) => r.status === null)!;
    await editRecord(hub.db, refused.id, 'code', 'FORBIDDEN');
    expect(await verify()).toMatchObject({ ok: false, firstBrokenId: await firstOfRow(hub.db, refused.id) });
    await editRecord(hub.db, refused.id, 'code', 'NOT_FOUND');
    expect(await verify()).toMatchObject({ ok: true });

    // Consecutive records of one caller to one system share a row (these calls came close
    // together): the chain is checked row by row, and a broken row is named by its first record.
    const head = await firstOfRow(hub.db, stored[1]!.id);
    await editRecord(hub.db, stored[1]!.id, 'status', 299);
    expect(await verify()).toMatchObject({ ok: false, checked: stored.findIndex((r) => r.id === head), firstBrokenId: head });
    await editRecord(hub.db, stored[1]!.id, 'status', stored[1]!.status);
    expect(await verify()).toMatchObject({ ok: true });

    // From the chain's start, through the retention variant: the same answer; a malformed start is refused
    const fromStart = (await hub.admin(`query($h: String!) { verifyInvocationChainFrom(fromHash: $h) { ok checked firstBrokenId } }`, { h: '0'.repeat(64) })).verifyInvocationChainFrom;
    expect(fromStart).toEqual({ ok: true, checked: stored.length, firstBrokenId: null });
    for (const h of ['0'.repeat(63), 'F'.repeat(64), `${'0'.repeat(63)}g`]) {
      const res = await hub.gql(`query($h: String!) { verifyInvocationChainFrom(fromHash: $h) { ok } }`, { h });
      expect(res.body.errors?.[0]?.extensions?.code, h).toBe('BAD_USER_INPUT');
    }

    // Delete a record in the middle: the next one no longer follows its predecessor (named by the
    // next record when the deleted one began its row, else by its row's first record).
    const deletedHead = await firstOfRow(hub.db, stored[2]!.id);
    await deleteRecord(hub.db, stored[2]!.id);
    expect(await verify()).toMatchObject({ ok: false, firstBrokenId: deletedHead === stored[2]!.id ? stored[3]!.id : deletedHead });
  });
});

describe.each(testDatabases())('records when logging fails on %s', (kind) => {
  it('records a failed call whose log line cannot be written, once', async () => {
    const hub = await startTestHub(kind, { failLogLine: /upstream call failed/ });
    try {
      // nothing listens there: the call fails with a cause, which the hub logs as a warning
      await seedExclusive(hub, { tenantId: 'lf1', systemId: 'gone', baseUrl: `http://127.0.0.1:${await freePort()}` });
      const res = await hub.gql(INVOKE_QUERY, { t: 'lf1', s: 'gone', p: { path: '/x' } });
      expect(res.body.data?.invoke).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      await hub.hub.audit.flush();
      const { nodes } = await listInvocations(hub, { tenantId: 'lf1' });
      expect(nodes.map((r) => r.code)).toEqual(['UPSTREAM_UNREACHABLE']);
    } finally {
      await hub.close();
    }
  });
});

describe.each(testDatabases())('graceful shutdown on %s', (kind) => {
  // Each test brings its own database, so that it can be read after the hub closed.
  async function withOwnDatabase(fn: (ctx: { hub: TestHub; up: Upstream; db: TestDatabase }) => Promise<void>) {
    const db = await createTestDatabase(kind);
    const up = await startUpstream();
    let hub: TestHub | undefined;
    try {
      hub = await startTestHub(kind, { db, env: { HUB_SHUTDOWN_TIMEOUT_MS: '20000' } });
      await seedExclusive(hub, { tenantId: 'd1', systemId: 'ds', baseUrl: up.url, token: 'drain-token' });
      await fn({ hub, up, db });
    } finally {
      await hub?.close().catch(() => {});
      await up.close();
      await db.drop();
    }
  }

  const storedRecords = (db: TestDatabase) => db.query<{ path: string; requestId: string }>(`SELECT path, "requestId" FROM "Invocation"`);

  it('stores the records still queued when hub.close() starts', { timeout: 90_000 }, async () => {
    await withOwnDatabase(async ({ hub, db }) => {
      // Records are written in the background a few milliseconds after the answer. Hold those
      // background writes back (white-box: AuditLog.schedule), so that every record of these
      // invokes is still queued at close() and only close() can store it.
      const audit = hub.hub.audit as unknown as { schedule: (delayMs: number) => void; pending: number };
      expect(typeof audit.schedule).toBe('function');
      audit.schedule = () => {};

      const paths = Array.from({ length: 20 }, (_, i) => `/fast/${i}`);
      const doc = `{ ${paths.slice(0, 10).map((p, i) => `f${i}: invoke(tenantId: "d1", systemId: "ds", params: { path: "${p}" }) { status requestId }`).join(' ')} }`;
      const [many, ...single] = await Promise.all([hub.gql(doc), ...paths.slice(10).map((p) => hub.gql(INVOKE_QUERY, { t: 'd1', s: 'ds', p: { path: p } }))]);
      expect(audit.pending).toBe(20);
      await hub.close();

      expect(many!.body.errors).toBeUndefined();
      for (const res of single) expect(res.body.errors).toBeUndefined();
      const requestIds = [...Object.values(many!.body.data).map((r: any) => r.requestId), ...single.map((r) => r.body.data.invoke.requestId)];
      const stored = await storedRecords(db);
      expect(stored.map((r) => r.path).sort()).toEqual([...paths].sort());
      expect(stored.map((r) => r.requestId).sort()).toEqual(requestIds.sort());
    });
  });

  it('finishes invokes in flight when hub.close() starts and stores their records', { timeout: 90_000 }, async () => {
    await withOwnDatabase(async ({ hub, up, db }) => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      up.route('/slow', async (req: RecordedRequest, res: ServerResponse) => {
        await gate;
        echo(req, res);
      });
      try {
        const slow = [1, 2, 3, 4, 5].map((i) => hub.gql(INVOKE_QUERY, { t: 'd1', s: 'ds', p: { path: `/slow/${i}` } }));
        for (let waited = 0; up.requests.filter((r) => r.url.startsWith('/slow/')).length < 5; waited += 20) {
          expect(waited).toBeLessThan(10_000);
          await new Promise((r) => setTimeout(r, 20));
        }
        const closing = hub.close();
        setTimeout(release, 100);
        const answers = await Promise.all(slow);
        await closing;

        for (const res of answers) expect(res.body.data?.invoke?.status, JSON.stringify(res.body)).toBe(200);
        const stored = await storedRecords(db);
        expect(stored.map((r) => r.path).sort()).toEqual([1, 2, 3, 4, 5].map((i) => `/slow/${i}`));
        expect(stored.map((r) => r.requestId).sort()).toEqual(answers.map((r) => r.body.data.invoke.requestId).sort());
      } finally {
        release();
      }
    });
  });
});

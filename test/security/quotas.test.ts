// Attack suite, quotas (OWASP API4:2023, unrestricted resource consumption): a per-caller invoke
// budget per minute (HUB_QUOTA_PER_MINUTE, here 5; Caller.quotaPerMinute overrides it), answered
// with RATE_LIMITED and extensions.retryAfterMs, without anything being sent upstream and without
// touching other callers. Windows are per caller and per minute, so every case uses fresh callers
// and finishes well within a minute of their first invoke.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorsByPath, invocationsOf, issueKey } from '../helpers/attack-kit.js';
import { testDatabases } from '../helpers/databases.js';
import { expectData, expectError } from '../helpers/registry-snapshot.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from '../helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from '../helpers/test-hub.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const DEFAULT_QUOTA = 5;

describe.each(testDatabases())('quotas on %s', (kind) => {
  let hub: TestHub;
  let up: Upstream; // the called system: counts what each caller really got through

  beforeAll(async () => {
    up = await startUpstream();
    hub = await startTestHub(kind, { env: { HUB_QUOTA_PER_MINUTE: String(DEFAULT_QUOTA) } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/crm`, token: 'crm-token' });
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  async function caller(id: string, quotaPerMinute?: number | null): Promise<string> {
    const created = await hub.admin(
      `mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey caller { id quotaPerMinute } } }`,
      { i: { id, name: id, tenantId: 'acme', quotaPerMinute } },
    );
    expect(created.createCaller.caller.quotaPerMinute).toBe(quotaPerMinute ?? null);
    await hub.admin(`mutation($i: GrantInput!) { grant(input: $i) { id } }`, { i: { callerId: id, tenantId: 'acme', systemId: 'crm' } });
    return created.createCaller.apiKey as string;
  }
  /** Paths of one caller's calls all start with /crm/<callerId>/, so the upstream can be counted per caller. */
  const q = (key: string, who: string, n: number | string) => hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: `/${who}/${n}` } }, { key });
  const m = (key: string, who: string, n: number | string, method = 'POST') => hub.gql(INVOKE_MUTATION, { t: 'acme', s: 'crm', p: { method, path: `/${who}/${n}` } }, { key });
  const received = (who: string) => up.requests.filter((r) => r.url.startsWith(`/crm/${who}/`)).map((r) => r.url);
  const ok = (res: GqlResponse) => expect(expectData(res).invoke.status).toBe(200);

  function expectLimited(res: GqlResponse) {
    const error = expectError(res, 'RATE_LIMITED'); // a field error: HTTP 200
    expect(res.body.data?.invoke ?? null).toBeNull();
    const retryAfterMs = error.extensions!.retryAfterMs as number;
    expect(Number.isFinite(retryAfterMs)).toBe(true);
    expect(retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    return error;
  }

  it('caller A gets its 5 invokes, the 6th and 7th are RATE_LIMITED; the upstream received exactly 5', async () => {
    const key = await caller('qa');
    for (let i = 1; i <= 5; i++) ok(await q(key, 'qa', i));
    const sixth = expectLimited(await q(key, 'qa', 6));
    const seventh = expectLimited(await m(key, 'qa', 7));
    expect(seventh.extensions!.retryAfterMs).toBeLessThanOrEqual(sixth.extensions!.retryAfterMs);
    expect(sixth.message).not.toMatch(/qa|acme|crm/); // says nothing about targets
    expect(received('qa')).toEqual([1, 2, 3, 4, 5].map((i) => `/crm/qa/${i}`));
  });

  it('caller B is unaffected by A having used up its quota', async () => {
    const a = await caller('qb-a');
    const b = await caller('qb-b');
    for (let i = 1; i <= 5; i++) ok(await q(a, 'qb-a', i));
    expectLimited(await q(a, 'qb-a', 6));
    for (let i = 1; i <= 5; i++) ok(await q(b, 'qb-b', i));
    expectLimited(await q(b, 'qb-b', 6));
    expectLimited(await q(a, 'qb-a', 7));
    expect(received('qb-a')).toHaveLength(5);
    expect(received('qb-b')).toHaveLength(5);
  });

  it('a caller created with quotaPerMinute: 2 is limited at 2 while the default stays 5', async () => {
    const low = await caller('qc-low', 2);
    const normal = await caller('qc-normal');
    ok(await q(low, 'qc-low', 1));
    ok(await q(normal, 'qc-normal', 1));
    ok(await q(low, 'qc-low', 2));
    expectLimited(await q(low, 'qc-low', 3));
    for (let i = 2; i <= 5; i++) ok(await q(normal, 'qc-normal', i));
    expectLimited(await q(normal, 'qc-normal', 6));
    expect(received('qc-low')).toHaveLength(2);
    expect(received('qc-normal')).toHaveLength(5);
  });

  it('updateCaller quotaPerMinute: null returns a caller to the default', async () => {
    const key = await caller('qd', 2);
    const updated = await hub.admin(`mutation { updateCaller(id: "qd", input: { quotaPerMinute: null }) { quotaPerMinute } }`);
    expect(updated.updateCaller.quotaPerMinute).toBeNull();
    for (let i = 1; i <= 5; i++) ok(await q(key, 'qd', i));
    expectLimited(await q(key, 'qd', 6));
    expect(received('qd')).toHaveLength(5);
  });

  it('a quota change takes effect on the next request, within the running minute', async () => {
    const key = await caller('qe');
    ok(await q(key, 'qe', 1));
    ok(await q(key, 'qe', 2));
    await hub.admin(`mutation { updateCaller(id: "qe", input: { quotaPerMinute: 2 }) { quotaPerMinute } }`);
    expectLimited(await q(key, 'qe', 3));
    await hub.admin(`mutation { updateCaller(id: "qe", input: { quotaPerMinute: 4 }) { quotaPerMinute } }`);
    ok(await q(key, 'qe', 4));
    ok(await q(key, 'qe', 5));
    expectLimited(await q(key, 'qe', 6));
    expect(received('qe')).toEqual(['/crm/qe/1', '/crm/qe/2', '/crm/qe/4', '/crm/qe/5']);
  });

  it.each([0, -1, 1_000_001])('refuses quotaPerMinute %d as BAD_USER_INPUT (no unlimited or negative budget by accident)', async (quota) => {
    expectError(await hub.gql(`mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey } }`, { i: { id: `qbad${quota}`.replace('-', 'm'), name: 'x', quotaPerMinute: quota } }), 'BAD_USER_INPUT');
    await caller(`qbad-upd${String(quota).replace('-', 'm')}`);
    expectError(await hub.gql(`mutation($c: ID!, $q: Int) { updateCaller(id: $c, input: { quotaPerMinute: $q }) { quotaPerMinute } }`, { c: `qbad-upd${String(quota).replace('-', 'm')}`, q: quota }), 'BAD_USER_INPUT');
  });

  it('admin keys are not subject to the quota', async () => {
    // By design (src/invoke/invoke-service.ts: the quota is counted only for non-admin
    // principals): admin keys operate the hub and are not handed to calling systems, so their
    // invokes (diagnostics, smoke tests after a change) are never throttled.
    for (let i = 1; i <= DEFAULT_QUOTA * 2 + 2; i++) ok(await q(hub.adminKey, 'qadmin', i));
    expect(received('qadmin')).toHaveLength(DEFAULT_QUOTA * 2 + 2);
  });

  it('Query and Mutation invokes, and all keys of a caller, share one budget (rotating keys does not reset it)', async () => {
    const key1 = await caller('qf');
    const key2 = (await issueKey(hub, 'qf')).apiKey;
    ok(await q(key1, 'qf', 1));
    ok(await m(key2, 'qf', 2));
    ok(await q(key2, 'qf', 3));
    ok(await m(key1, 'qf', 4, 'PUT'));
    ok(await q(key1, 'qf', 5));
    expectLimited(await q(key2, 'qf', 6));
    expectLimited(await m(key1, 'qf', 7, 'DELETE'));
    const key3 = (await issueKey(hub, 'qf')).apiKey;
    expectLimited(await q(key3, 'qf', 8));
    expect(received('qf')).toHaveLength(5);
  });

  it('10 concurrent invokes with a quota of 5: exactly 5 are sent, 5 are RATE_LIMITED', async () => {
    const key = await caller('qg');
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => q(key, 'qg', i)));
    const served = answers.filter((r) => r.body.data?.invoke?.status === 200);
    const limited = answers.filter((r) => r.body.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
    expect(served).toHaveLength(5);
    expect(limited).toHaveLength(5);
    expect(received('qg')).toHaveLength(5);
  });

  it('a document with 8 aliased invokes by a caller with 5 left gets 5 results and 3 RATE_LIMITED errors', async () => {
    const key = await caller('qh', 7);
    ok(await q(key, 'qh', 'single-1'));
    ok(await q(key, 'qh', 'single-2'));
    const fields = Array.from({ length: 8 }, (_, i) => `f${i}: invoke(tenantId: "acme", systemId: "crm", params: { path: "/qh/doc-${i}" }) { status requestId }`);
    const res = await hub.gql(`{ ${fields.join('\n')} }`, {}, { key });
    expect(res.status).toBe(200);
    const errors = errorsByPath(res);
    const servedAliases = Object.keys(res.body.data ?? {}).filter((f) => res.body.data[f]?.status === 200);
    expect(servedAliases).toHaveLength(5);
    expect(Object.values(errors).map((e) => e.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED']);
    for (const [alias, e] of Object.entries(errors)) {
      expect(res.body.data[alias]).toBeNull();
      expect(e.extensions.retryAfterMs).toBeGreaterThanOrEqual(1);
      expect(e.extensions.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    expect(received('qh').filter((u) => u.includes('/doc-')).sort()).toEqual(servedAliases.map((f) => `/crm/qh/doc-${f.slice(1)}`).sort());
    expect(received('qh')).toHaveLength(7);
  });

  it('in a mutation document the budget runs out in document order', async () => {
    const key = await caller('qi');
    const fields = Array.from({ length: 8 }, (_, i) => `f${i}: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/qi/${i}" }) { status }`);
    const res = await hub.gql(`mutation { ${fields.join('\n')} }`, {}, { key });
    expect(Object.fromEntries(Object.entries(errorsByPath(res)).map(([p, e]) => [p, e.code]))).toEqual({ f5: 'RATE_LIMITED', f6: 'RATE_LIMITED', f7: 'RATE_LIMITED' });
    for (let i = 0; i < 5; i++) expect(res.body.data[`f${i}`]).toEqual({ status: 200 });
    expect(received('qi')).toEqual([0, 1, 2, 3, 4].map((i) => `/crm/qi/${i}`));
  });

  it('each refused invoke leaves an invocation record with code RATE_LIMITED and the requestId of its error', async () => {
    const key = await caller('qj');
    const served: string[] = [];
    for (let i = 1; i <= 5; i++) served.push(expectData(await q(key, 'qj', i)).invoke.requestId);
    const single = expectLimited(await q(key, 'qj', 6));
    const doc = await hub.gql(
      `mutation { a: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/qj/7" }) { status }
                  b: invoke(tenantId: "acme", systemId: "crm", params: { method: DELETE, path: "/qj/8" }) { status } }`,
      {},
      { key },
    );
    const docErrors = errorsByPath(doc);
    expect(Object.values(docErrors).map((e) => e.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    const refusedIds = [single.extensions!.requestId, docErrors.a!.extensions.requestId, docErrors.b!.extensions.requestId];
    for (const id of refusedIds) expect(typeof id).toBe('string');
    // The caller may still read its records: the quota is about invokes only.
    const mine = expectData(await hub.gql(`{ invocations(first: 50) { totalCount } }`, {}, { key }));
    expect(mine.invocations.totalCount).toBe(8);
    const records = await invocationsOf(hub, 'qj');
    expect(records.totalCount).toBe(8);
    const limited = records.nodes.filter((n) => n.code === 'RATE_LIMITED');
    expect(limited.map((n) => n.requestId).sort()).toEqual([...refusedIds].sort());
    expect(limited.map((n) => `${n.method} ${n.path} ${n.status}`).sort()).toEqual(['DELETE /qj/8 null', 'GET /qj/6 null', 'POST /qj/7 null']);
    expect(records.nodes.filter((n) => n.code === null).map((n) => n.requestId).sort()).toEqual([...served].sort());
    expect(received('qj')).toHaveLength(5);
  });
});

// Attack suite, tenant isolation (OWASP API1:2023, broken object level authorization): a caller of
// tenant A, granted on A (or on one system of A) only, tries every way it can think of to reach
// tenant B. B's deployments are the "canary": a loopback server that must never receive anything
// in this file. The SHARED deployment (one server for all tenants) may only ever see A's calls
// with A's routing header, except where a caller is granted on both tenants.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorsByPath, invocationsOf, sentSince, waitFor } from '../helpers/attack-kit.js';
import { testDatabases } from '../helpers/databases.js';
import { expectData, expectError } from '../helpers/registry-snapshot.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from '../helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from '../helpers/test-hub.js';
import { batchEcho, startUpstream, type Upstream } from '../helpers/upstream.js';

const REFUSED = ['FORBIDDEN', 'BAD_USER_INPUT'];

/** Look-alikes of the tenant ids "acme" (granted) and "globex" (not granted). */
const LOOK_ALIKES: [string, string][] = [
  ['trailing space', 'acme '],
  ['leading space', ' acme'],
  ['trailing tab', 'acme\t'],
  ['trailing newline', 'acme\n'],
  ['CR LF', 'acme\r\n'],
  ['inner space', 'ac me'],
  ['non-breaking space', 'acme\u00a0'],
  ['Cyrillic a (U+0430)', '\u0430cme'],
  ['Cyrillic e (U+0435)', 'acm\u0435'],
  ['full-width letters', '\uff41\uff43\uff4d\uff45'],
  ['zero-width space', 'acme\u200b'],
  ['zero-width joiner inside', 'ac\u200dme'],
  ['soft hyphen inside', 'ac\u00adme'],
  ['byte order mark', '\ufeffacme'],
  ['combining mark', 'acme\u0301'],
  ['dotted capital I folding (ACMEİ)', 'ACME\u0130'],
  ['percent-encoded space', 'acme%20'],
  ['path-style escape', 'acme/../globex'],
  ['list of ids', 'acme,globex'],
  ['SQL-ish', "globex' OR '1'='1"],
  ['LIKE wildcard', 'glob%'],
  ['regex-ish', 'acme|globex'],
  ['B with trailing space', 'globex '],
  ['B with Cyrillic o', 'gl\u043ebex'],
  ['empty id', ''],
];

describe.each(testDatabases())('tenant isolation on %s', (kind) => {
  let hub: TestHub;
  let acmeUp: Upstream; // tenant A's own deployments (crm, erp)
  let canary: Upstream; // everything of tenant B (and of the case-variant tenant "ACME")
  let saas: Upstream; // the one SHARED deployment of billing and ledger
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    [acmeUp, canary, saas] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    saas.route('/ledger/$batch', batchEcho);
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${acmeUp.url}/acme-crm`, token: 'acme-crm-token' });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'erp', baseUrl: `${acmeUp.url}/acme-erp` });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: `${canary.url}/globex-crm`, token: 'globex-crm-token' });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'erp', baseUrl: `${canary.url}/globex-erp` });
    // A distinct tenant whose id differs from A's only in case (ids are case-sensitive).
    await seedExclusive(hub, { tenantId: 'ACME', systemId: 'crm', baseUrl: `${canary.url}/ACME-crm`, token: 'ACME-crm-token' });
    await hub.admin(`mutation { createTenant(input: { id: "initech", name: "Initech" }) { id } }`);
    await hub.admin(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, {
      i: { id: 'billing', name: 'Billing', mode: 'SHARED', sharedBaseUrl: `${saas.url}/billing` },
    });
    await hub.admin(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, {
      i: { id: 'ledger', name: 'Ledger', mode: 'SHARED', sharedBaseUrl: `${saas.url}/ledger`, tenantHeader: 'X-Org-Id', batchPath: '/$batch' },
    });
    for (const [t, token] of [['acme', 'acme-billing-key'], ['globex', 'globex-billing-key']]) {
      await hub.admin(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
        i: { tenantId: t, systemId: 'billing', credential: { kind: 'HEADER', headerName: 'X-Api-Key', token } },
      });
      await hub.admin(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
        i: { tenantId: t, systemId: 'ledger', credential: { kind: 'BEARER', token: `${t}-ledger-token` } },
      });
    }
    keys.all = await createCallerWithGrant(hub, { id: 'a-all', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
    keys.crm = await createCallerWithGrant(hub, { id: 'a-crm', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
    keys.billing = await createCallerWithGrant(hub, { id: 'a-billing', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'billing' }] });
    keys.patients = await createCallerWithGrant(hub, {
      id: 'a-patients',
      tenantId: 'acme',
      grants: [{ tenantId: 'acme', systemId: 'crm', methods: ['GET'], pathPrefix: '/patients' }],
    });
  });
  afterAll(async () => {
    await hub?.close();
    await Promise.all([acmeUp, canary, saas].map((u) => u?.close()));
  });
  // Nothing in this file may ever reach tenant B's deployments.
  afterEach(() => {
    expect(canary.requests.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  const q = (key: string, t: string, s: string, p: Record<string, unknown>) => hub.gql(INVOKE_QUERY, { t, s, p }, { key });
  const m = (key: string, t: string, s: string, p: Record<string, unknown>) => hub.gql(INVOKE_MUTATION, { t, s, p }, { key });
  const counts = () => ({ acme: acmeUp.requests.length, canary: canary.requests.length, saas: saas.requests.length });
  /** Requests the SHARED deployment got since `before` that name a tenant other than acme. */
  const saasForeign = (before: number) => saas.requests.slice(before).filter((r) => r.headers['x-tenant-id'] !== 'acme' && r.headers['x-org-id'] !== 'acme');

  function expectRefused(res: GqlResponse, codes = REFUSED) {
    const detail = JSON.stringify(res.body);
    expect(res.status, detail).toBe(200);
    expect(res.body.data?.invoke ?? null, detail).toBeNull();
    expect(codes, detail).toContain(res.body.errors?.[0]?.extensions?.code);
    return res.body.errors![0]!;
  }

  // -----------------------------------------------------------------------------------------------
  describe('tenant ids', () => {
    it('control: the A callers reach A (and nothing else is contacted)', async () => {
      const before = counts();
      expect(expectData(await q(keys.all!, 'acme', 'crm', { path: '/patients/1' })).invoke.status).toBe(200);
      expect(expectData(await q(keys.crm!, 'acme', 'crm', { path: '/patients/2' })).invoke.status).toBe(200);
      expect(sentSince(acmeUp, before.acme)).toEqual(['GET /acme-crm/patients/1', 'GET /acme-crm/patients/2']);
      expect(counts()).toMatchObject({ canary: before.canary, saas: before.saas });
    });

    it.each([
      ['B itself', 'globex'],
      ['B upper case', 'GLOBEX'],
      ['B capitalised', 'Globex'],
      ['the distinct tenant "ACME" (A in upper case)', 'ACME'],
      ['A capitalised', 'Acme'],
      ['A in mixed case', 'aCmE'],
      ['an existing tenant without bindings', 'initech'],
      ['an unknown tenant', 'no-such-tenant'],
    ])('refuses %s (%j) for Query and Mutation invoke, with every grant shape, sending nothing', async (_, tenantId) => {
      const before = counts();
      for (const key of [keys.all!, keys.crm!]) {
        expectError(await q(key, tenantId, 'crm', { path: '/patients/1' }), 'FORBIDDEN');
        expectError(await m(key, tenantId, 'crm', { method: 'POST', path: '/patients', body: { x: 1 } }), 'FORBIDDEN');
        expectError(await m(key, tenantId, 'crm', { method: 'DELETE', path: '/patients/1' }), 'FORBIDDEN');
      }
      expect(counts()).toEqual(before);
    });

    it.each(LOOK_ALIKES)('refuses a look-alike of a tenant id: %s (%j)', async (_, tenantId) => {
      const before = counts();
      expectRefused(await q(keys.all!, tenantId, 'crm', { path: '/patients/1' }));
      expectRefused(await m(keys.all!, tenantId, 'crm', { method: 'PUT', path: '/patients/1', body: { x: 1 } }));
      expectRefused(await q(keys.all!, tenantId, 'billing', { path: '/invoices' }));
      expect(counts()).toEqual(before);
    });

    it.each([
      ['upper case', 'CRM'],
      ['capitalised', 'Crm'],
      ['trailing space', 'crm '],
      ['Cyrillic s (U+0441)', '\u0441rm'],
      ['another system of A', 'erp'],
      ['A\'s SHARED system', 'billing'],
      ['an unknown system', 'no-such-system'],
    ])('a caller granted on one system of A only is refused the system id %s (%j)', async (_, systemId) => {
      const before = counts();
      expectRefused(await q(keys.crm!, 'acme', systemId, { path: '/patients/1' }));
      expectRefused(await m(keys.crm!, 'acme', systemId, { method: 'POST', path: '/patients' }));
      expectRefused(await q(keys.crm!, 'globex', systemId, { path: '/patients/1' }));
      expect(counts()).toEqual(before);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('the tenant header of a SHARED system', () => {
    it('control: A reaches the SHARED deployment with its own routing header, set once by the hub', async () => {
      const before = saas.requests.length;
      expect(expectData(await q(keys.all!, 'acme', 'billing', { path: '/invoices' })).invoke.status).toBe(200);
      const sent = saas.requests.slice(before);
      expect(sent.map((r) => r.url)).toEqual(['/billing/invoices']);
      expect(sent[0]!.headers['x-tenant-id']).toBe('acme');
      expect(sent[0]!.headers['x-api-key']).toBe('acme-billing-key');
    });

    it.each([
      ['exact name', { 'X-Tenant-Id': 'globex' }],
      ['lower case', { 'x-tenant-id': 'globex' }],
      ['upper case', { 'X-TENANT-ID': 'globex' }],
      ['mixed case', { 'x-TeNaNt-iD': 'globex' }],
      ['trailing space in the name', { 'X-Tenant-Id ': 'globex' }],
      ['leading space in the name', { ' X-Tenant-Id': 'globex' }],
      ['tab in the name', { 'X-Tenant-Id\t': 'globex' }],
      ['colon in the name', { 'X-Tenant-Id:': 'globex' }],
      ['spaces around the value', { 'X-Tenant-Id': '  globex  ' }],
      ['a list as value', { 'X-Tenant-Id': 'globex, acme' }],
      ['even the caller\'s own tenant', { 'X-Tenant-Id': 'acme' }],
      ['given twice in different case', { 'x-tenant-id': 'acme', 'X-TENANT-ID': 'globex' }],
      ['smuggled through a header value', { 'X-Note': 'x\r\nX-Tenant-Id: globex' }],
    ])('refuses the tenant header in params.headers: %s', async (_, headers) => {
      const before = counts();
      expectError(await q(keys.all!, 'acme', 'billing', { path: '/invoices', headers }), 'BAD_USER_INPUT');
      expectError(await m(keys.all!, 'acme', 'billing', { method: 'POST', path: '/invoices', headers, body: { amount: 1 } }), 'BAD_USER_INPUT');
      expect(counts()).toEqual(before);
    });

    it('refuses header names that CGI/WSGI-style servers read as the tenant header (X_Tenant_Id)', async () => {
      // In CGI, WSGI (Django, Flask), Rack and PHP both "X-Tenant-Id" and "X_Tenant_Id" become
      // HTTP_X_TENANT_ID; a deployment behind such a server may take the caller's value. nginx and
      // gunicorn drop underscore headers by default for exactly this reason.
      for (const name of ['X_Tenant_Id', 'x_tenant_id', 'X-Tenant_Id']) {
        const before = counts();
        const res = await q(keys.all!, 'acme', 'billing', { path: `/invoices/${name}`, headers: { [name]: 'globex' } });
        const leaked = saas.requests.slice(before.saas).filter((r) => Object.keys(r.headers).some((h) => h.replace(/_/g, '-') === 'x-tenant-id' && r.headers[h] !== 'acme'));
        expect(leaked.map((r) => r.headers), `header ${name} reached the SHARED deployment`).toEqual([]);
        expectRefused(res, ['BAD_USER_INPUT']);
        expect(counts()).toEqual(before);
      }
    });

    it("refuses a SHARED system's custom tenant header (X-Org-Id) in any case", async () => {
      const before = counts();
      for (const headers of [{ 'X-Org-Id': 'globex' }, { 'x-org-id': 'globex' }, { 'X-ORG-ID': 'acme' }]) {
        expectError(await q(keys.all!, 'acme', 'ledger', { path: '/entries', headers }), 'BAD_USER_INPUT');
        expectError(await m(keys.all!, 'acme', 'ledger', { method: 'PATCH', path: '/entries/1', headers }), 'BAD_USER_INPUT');
      }
      expect(counts()).toEqual(before);
    });

    it('refuses the credential header of the binding (X-Api-Key), so a caller cannot swap in B\'s key', async () => {
      const before = counts();
      expectError(await q(keys.all!, 'acme', 'billing', { path: '/invoices', headers: { 'x-api-key': 'globex-billing-key' } }), 'BAD_USER_INPUT');
      expectError(await q(keys.all!, 'acme', 'billing', { path: '/invoices', headers: { Authorization: 'Bearer globex-billing-key' } }), 'BAD_USER_INPUT');
      expect(counts()).toEqual(before);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe("another tenant's SHARED binding", () => {
    it('a caller granted on (A, billing) cannot reach (B, billing), by id or by header; A still works', async () => {
      const before = counts();
      expectError(await q(keys.billing!, 'globex', 'billing', { path: '/invoices' }), 'FORBIDDEN');
      expectError(await m(keys.billing!, 'globex', 'billing', { method: 'POST', path: '/invoices', body: { a: 1 } }), 'FORBIDDEN');
      expectError(await q(keys.billing!, 'globex', 'billing', { path: '/invoices', headers: { 'X-Tenant-Id': 'globex' } }), 'FORBIDDEN');
      expectRefused(await q(keys.billing!, 'acme', 'billing', { path: '/invoices', headers: { 'X-Tenant-Id': 'globex' } }));
      expect(counts()).toEqual(before);
      expect(expectData(await q(keys.billing!, 'acme', 'billing', { path: '/invoices/9' })).invoke.status).toBe(200);
      expect(sentSince(saas, before.saas)).toEqual(['GET /billing/invoices/9']);
      expect(saasForeign(before.saas)).toEqual([]);
    });

    it('a document mixing A and B on a batching SHARED system batches only A, under A\'s header and token', async () => {
      const before = saas.requests.length;
      const fields = ['acme', 'globex', 'acme', 'globex', 'acme']
        .map((t, i) => `f${i}: invoke(tenantId: "${t}", systemId: "ledger", params: { path: "/entries/${i}" }) { status data }`)
        .join('\n');
      const res = await hub.gql(`{ ${fields} }`, {}, { key: keys.all! });
      const errors = errorsByPath(res);
      expect(Object.keys(errors).sort()).toEqual(['f1', 'f3']);
      expect(errors.f1!.code).toBe('FORBIDDEN');
      expect(errors.f3!.code).toBe('FORBIDDEN');
      for (const f of ['f0', 'f2', 'f4']) expect(res.body.data[f].status).toBe(200);
      expect(res.body.data.f1).toBeNull();
      const sent = saas.requests.slice(before);
      expect(sent).toHaveLength(1);
      expect(sent[0]!.url).toBe('/ledger/$batch');
      expect(sent[0]!.headers['x-org-id']).toBe('acme');
      expect(sent[0]!.headers.authorization).toBe('Bearer acme-ledger-token');
      expect(JSON.parse(sent[0]!.body).requests.map((r: { url: string }) => r.url).sort()).toEqual(['/entries/0', '/entries/2', '/entries/4']);
    });

    it('a caller granted on both tenants gets one batch per tenant, never a mixed one', async () => {
      const key = await createCallerWithGrant(hub, { id: 'integrator', grants: [{ tenantId: 'acme', systemId: 'ledger' }, { tenantId: 'globex', systemId: 'ledger' }] });
      const before = saas.requests.length;
      const fields = ['acme', 'globex', 'acme', 'globex']
        .map((t, i) => `f${i}: invoke(tenantId: "${t}", systemId: "ledger", params: { path: "/${t}/${i}" }) { status data }`)
        .join('\n');
      const data = expectData(await hub.gql(`{ ${fields} }`, {}, { key }));
      for (const [i, t] of ['acme', 'globex', 'acme', 'globex'].entries()) expect(data[`f${i}`].data.url).toBe(`/${t}/${i}`);
      const batches = saas.requests.slice(before);
      expect(batches).toHaveLength(2);
      for (const b of batches) {
        const tenant = b.headers['x-org-id'] as string;
        expect(['acme', 'globex']).toContain(tenant);
        expect(b.headers.authorization).toBe(`Bearer ${tenant}-ledger-token`);
        for (const r of JSON.parse(b.body).requests as { url: string }[]) expect(r.url.startsWith(`/${tenant}/`), r.url).toBe(true);
      }
      expect(new Set(batches.map((b) => b.headers['x-org-id']))).toEqual(new Set(['acme', 'globex']));
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('documents mixing allowed and forbidden targets', () => {
    it('aliases: A gets its data, every B alias gets FORBIDDEN, B is untouched', async () => {
      const before = counts();
      const res = await hub.gql(
        `{
          a: invoke(tenantId: "acme", systemId: "crm", params: { path: "/patients/a" }) { status data }
          b: invoke(tenantId: "globex", systemId: "crm", params: { path: "/patients/a" }) { status data }
          c: invoke(tenantId: "ACME", systemId: "crm", params: { path: "/patients/a" }) { status data }
          d: invoke(tenantId: "acme", systemId: "billing", params: { path: "/invoices/d" }) { status data }
          e: invoke(tenantId: "globex", systemId: "billing", params: { path: "/invoices/d" }) { status data }
          f: invoke(tenantId: "globex", systemId: "erp", params: { path: "/x" }) { status data }
        }`,
        {},
        { key: keys.all! },
      );
      expect(res.status).toBe(200);
      const errors = errorsByPath(res);
      expect(Object.fromEntries(Object.entries(errors).map(([p, e]) => [p, e.code]))).toEqual({ b: 'FORBIDDEN', c: 'FORBIDDEN', e: 'FORBIDDEN', f: 'FORBIDDEN' });
      expect(res.body.data.a).toMatchObject({ status: 200, data: { url: '/acme-crm/patients/a' } });
      expect(res.body.data.d).toMatchObject({ status: 200, data: { url: '/billing/invoices/d' } });
      for (const alias of ['b', 'c', 'e', 'f']) expect(res.body.data[alias]).toBeNull();
      expect(sentSince(acmeUp, before.acme)).toEqual(['GET /acme-crm/patients/a']);
      expect(sentSince(saas, before.saas)).toEqual(['GET /billing/invoices/d']);
      expect(saasForeign(before.saas)).toEqual([]);
      expect(canary.requests.length).toBe(before.canary);
    });

    it('mutations in document order: a forbidden B write between two A writes stops nothing and sends nothing to B', async () => {
      const before = counts();
      const res = await hub.gql(
        `mutation($b: JSON) {
          one: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/notes", body: $b }) { status }
          two: invoke(tenantId: "globex", systemId: "crm", params: { method: DELETE, path: "/notes/1" }) { status }
          three: invoke(tenantId: "acme", systemId: "crm", params: { method: DELETE, path: "/notes/1" }) { status }
          four: invoke(tenantId: "globex", systemId: "billing", params: { method: POST, path: "/invoices", body: $b }) { status }
        }`,
        { b: { text: 'hi' } },
        { key: keys.all! },
      );
      const errors = errorsByPath(res);
      expect(Object.fromEntries(Object.entries(errors).map(([p, e]) => [p, e.code]))).toEqual({ two: 'FORBIDDEN', four: 'FORBIDDEN' });
      expect(res.body.data).toMatchObject({ one: { status: 200 }, two: null, three: { status: 200 }, four: null });
      expect(sentSince(acmeUp, before.acme)).toEqual(['POST /acme-crm/notes', 'DELETE /acme-crm/notes/1']);
      expect(counts()).toMatchObject({ canary: before.canary, saas: before.saas });
    });

    it('a fragment and the same params variable reused for A and B: only A is sent, B is not served from A\'s dedupe', async () => {
      const before = counts();
      const res = await hub.gql(
        `query($p: InvokeParams!, $mine: ID!, $theirs: ID!, $sys: ID!) {
          theirs: invoke(tenantId: $theirs, systemId: $sys, params: $p) { ...R }
          mine: invoke(tenantId: $mine, systemId: $sys, params: $p) { ...R }
          ... on Query { inline: invoke(tenantId: $theirs, systemId: $sys, params: $p) { ...R } }
          ...Spread
        }
        fragment R on InvokeResult { status data requestId }
        fragment Spread on Query { spread: invoke(tenantId: $theirs, systemId: $sys, params: $p) @include(if: true) { ...R } }`,
        { p: { path: '/patients/shared-params' }, mine: 'acme', theirs: 'globex', sys: 'crm' },
        { key: keys.all! },
      );
      const errors = errorsByPath(res);
      expect(Object.fromEntries(Object.entries(errors).map(([p, e]) => [p, e.code]))).toEqual({ theirs: 'FORBIDDEN', inline: 'FORBIDDEN', spread: 'FORBIDDEN' });
      expect(res.body.data.mine).toMatchObject({ status: 200, data: { url: '/acme-crm/patients/shared-params' } });
      expect(res.body.data.theirs).toBeNull();
      expect(res.body.data.inline).toBeNull();
      expect(res.body.data.spread).toBeNull();
      expect(sentSince(acmeUp, before.acme)).toEqual(['GET /acme-crm/patients/shared-params']);
      expect(canary.requests.length).toBe(before.canary);
    });

    it('two fields under one response name (A and B) are refused as a whole before anything is sent', async () => {
      const before = counts();
      const res = await hub.gql(
        `{ x: invoke(tenantId: "acme", systemId: "crm", params: { path: "/patients/x" }) { status }
           x: invoke(tenantId: "globex", systemId: "crm", params: { path: "/patients/x" }) { status } }`,
        {},
        { key: keys.all! },
      );
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(counts()).toEqual(before);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('path prefixes (grant: acme/crm, GET, /patients)', () => {
    it('control: /patients and what lies under it are reached', async () => {
      const before = acmeUp.requests.length;
      for (const path of ['/patients', '/patients/7', '/patients/7/visits']) expect(expectData(await q(keys.patients!, 'acme', 'crm', { path })).invoke.status).toBe(200);
      expect(sentSince(acmeUp, before)).toEqual(['GET /acme-crm/patients', 'GET /acme-crm/patients/7', 'GET /acme-crm/patients/7/visits']);
    });

    it.each([
      ['/patients-admin', ['FORBIDDEN']],
      ['/patientsadmin/1', ['FORBIDDEN']],
      ['/patient', ['FORBIDDEN']],
      ['/PATIENTS', ['FORBIDDEN']],
      ['/Patients/7', ['FORBIDDEN']],
      ['/admin', ['FORBIDDEN']],
      ['/', ['FORBIDDEN']],
      ['/admin/patients', ['FORBIDDEN']],
      ['/patients;/admin', ['FORBIDDEN']],
      ['/%70atients/7', ['FORBIDDEN', 'BAD_USER_INPUT']],
      ['/patients%2fadmin', ['FORBIDDEN', 'BAD_USER_INPUT']],
      ['/patients/../admin', ['BAD_USER_INPUT']],
      ['/patients/./../admin', ['BAD_USER_INPUT']],
      ['/patients/..', ['BAD_USER_INPUT']],
      ['/patients%2f..%2fadmin', ['BAD_USER_INPUT']],
      ['/patients%2F..%2Fadmin', ['BAD_USER_INPUT']],
      ['/patients/%2e%2e/admin', ['BAD_USER_INPUT']],
      ['/patients/.%2e/admin', ['BAD_USER_INPUT']],
      ['/patients/%252e%252e/admin', ['BAD_USER_INPUT']],
      ['/patients/..%2fadmin', ['BAD_USER_INPUT']],
      ['/patients/..;/admin', ['BAD_USER_INPUT']],
      ['/patients/..%3b/admin', ['BAD_USER_INPUT']],
      ['/patients\\..\\admin', ['BAD_USER_INPUT']],
      ['/patients/%5c..%5cadmin', ['BAD_USER_INPUT']],
      ['//patients/../admin', ['BAD_USER_INPUT']],
      ['/patients//../admin', ['BAD_USER_INPUT']],
      ['/patients?x=/../admin', ['BAD_USER_INPUT']],
      ['/patients#/../admin', ['BAD_USER_INPUT']],
      ['/patients/\u0000/../admin', ['BAD_USER_INPUT']],
    ])('refuses %j', async (path, codes) => {
      const before = counts();
      expectRefused(await q(keys.patients!, 'acme', 'crm', { path }), codes);
      expect(counts()).toEqual(before);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('methods (grant: GET only)', () => {
    it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('refuses %s through Mutation.invoke under the granted prefix', async (method) => {
      const before = counts();
      expectError(await m(keys.patients!, 'acme', 'crm', { method, path: '/patients/7' }), 'FORBIDDEN');
      expect(counts()).toEqual(before);
    });

    it('refuses HEAD, and unsafe methods in Query.invoke; GET through Mutation.invoke still works', async () => {
      const before = counts();
      expectError(await q(keys.patients!, 'acme', 'crm', { method: 'HEAD', path: '/patients/7' }), 'FORBIDDEN');
      expectRefused(await q(keys.patients!, 'acme', 'crm', { method: 'DELETE', path: '/patients/7' }), ['BAD_USER_INPUT', 'FORBIDDEN']);
      expect(counts()).toEqual(before);
      expect(expectData(await m(keys.patients!, 'acme', 'crm', { method: 'GET', path: '/patients/7' })).invoke.status).toBe(200);
      expect(sentSince(acmeUp, before.acme)).toEqual(['GET /acme-crm/patients/7']);
    });

    it.each(['get', 'Delete', 'DELETE ', 'GET\r\nX-Tenant-Id: globex', 'CONNECT', 'TRACE'])('refuses the method %j outside the enum before anything is sent', async (method) => {
      const before = counts();
      const res = await hub.gql(INVOKE_MUTATION, { t: 'acme', s: 'crm', p: { method, path: '/patients/7' } }, { key: keys.patients! });
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.length).toBeGreaterThan(0);
      expect(counts()).toEqual(before);
    });

    it('refuses method-override headers that would turn a granted GET into a DELETE upstream', async () => {
      // Express method-override, Rails, ASP.NET, Google APIs and many gateways honour these on
      // the called side: forwarding them lets a GET-only grant delete.
      for (const name of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
        const before = counts();
        const res = await q(keys.patients!, 'acme', 'crm', { path: '/patients/7', headers: { [name]: 'DELETE' } });
        const overridden = acmeUp.requests.slice(before.acme).filter((r) => r.headers[name.toLowerCase()] !== undefined);
        expect(overridden.map((r) => `${r.method} ${r.url} ${name}: ${r.headers[name.toLowerCase()]}`)).toEqual([]);
        expectRefused(res, ['BAD_USER_INPUT', 'FORBIDDEN']);
      }
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('grant changes', () => {
    it('refuses a grant expiring in the past at creation, and an expired grant from its expiry on', async () => {
      await createCallerWithGrant(hub, { id: 'g-expiring', tenantId: 'acme', grants: [] });
      const key = (await hub.admin(`mutation { issueApiKey(callerId: "g-expiring") { apiKey } }`)).issueApiKey.apiKey as string;
      const past = await hub.gql(`mutation($i: GrantInput!) { grant(input: $i) { id } }`, { i: { callerId: 'g-expiring', tenantId: 'acme', expiresAt: new Date(Date.now() - 1000).toISOString() } });
      expectError(past, 'BAD_USER_INPUT');
      const expiresAt = new Date(Date.now() + 1500).toISOString();
      await hub.admin(`mutation($i: GrantInput!) { grant(input: $i) { id } }`, { i: { callerId: 'g-expiring', tenantId: 'acme', systemId: 'crm', expiresAt } });
      expect(expectData(await q(key, 'acme', 'crm', { path: '/exp/1' })).invoke.status).toBe(200);
      await waitFor('the grant to expire', () => Date.now() > new Date(expiresAt).getTime() + 100, 5000);
      const before = counts();
      expectError(await q(key, 'acme', 'crm', { path: '/exp/2' }), 'FORBIDDEN');
      expectError(await m(key, 'acme', 'crm', { method: 'POST', path: '/exp/3' }), 'FORBIDDEN');
      expect(counts()).toEqual(before);
    });

    it('takes a revoked grant away on the very next request, and a new grant gives access on the next one', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-revoked', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
      expect(expectData(await q(key, 'acme', 'crm', { path: '/rv/1' })).invoke.status).toBe(200);
      const [grant] = (await hub.admin(`{ caller(id: "g-revoked") { grants { id } } }`)).caller.grants as { id: string }[];
      expect(await hub.admin(`mutation($id: ID!) { revokeGrant(id: $id) }`, { id: grant!.id })).toEqual({ revokeGrant: true });
      const before = counts();
      expectError(await q(key, 'acme', 'crm', { path: '/rv/2' }), 'FORBIDDEN');
      expectError(await m(key, 'acme', 'crm', { method: 'POST', path: '/rv/3' }), 'FORBIDDEN');
      expect(counts()).toEqual(before);
      await hub.admin(`mutation { grant(input: { callerId: "g-revoked", tenantId: "acme", systemId: "erp" }) { id } }`);
      expect(expectData(await q(key, 'acme', 'erp', { path: '/rv/4' })).invoke.status).toBe(200);
      expectError(await q(key, 'acme', 'crm', { path: '/rv/5' }), 'FORBIDDEN');
      expect(sentSince(acmeUp, before.acme)).toEqual(['GET /acme-erp/rv/4']);
    });

    it('a grant revoked while a document is being prepared never widens into B', async () => {
      // A grant on A revoked and re-issued for a different system: the caller's aliases see one
      // consistent set of grants per request, and B is never reached in either state.
      const key = await createCallerWithGrant(hub, { id: 'g-race', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
      const doc = `{ a: invoke(tenantId: "acme", systemId: "crm", params: { path: "/race" }) { status }
                     b: invoke(tenantId: "globex", systemId: "crm", params: { path: "/race" }) { status } }`;
      const [grant] = (await hub.admin(`{ caller(id: "g-race") { grants { id } } }`)).caller.grants as { id: string }[];
      const results = await Promise.all([
        hub.gql(doc, {}, { key }),
        hub.admin(`mutation($id: ID!) { revokeGrant(id: $id) }`, { id: grant!.id }),
        hub.gql(doc, {}, { key }),
      ]);
      for (const res of [results[0], results[2]] as GqlResponse[]) expect(errorsByPath(res).b?.code).toBe('FORBIDDEN');
      const after = await hub.gql(doc, {}, { key });
      expect(Object.fromEntries(Object.entries(errorsByPath(after)).map(([p, e]) => [p, e.code]))).toEqual({ a: 'FORBIDDEN', b: 'FORBIDDEN' });
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('what a refusal reveals', () => {
    const shape = (res: GqlResponse, id: string) => {
      const e = res.body.errors![0]!;
      const { requestId, ...ext } = e.extensions ?? {};
      expect(typeof requestId).toBe('string');
      return JSON.stringify({ status: res.status, message: e.message.split(id).join('<ID>'), path: e.path, ext, data: res.body.data });
    };

    it('an unknown tenant and an existing ungranted one (bound, unbound, case variant) are indistinguishable', async () => {
      for (const key of [keys.all!, keys.crm!]) {
        for (const send of [q, (k: string, t: string, s: string, p: Record<string, unknown>) => m(k, t, s, { ...p, method: 'POST' })]) {
          const unknown = shape(await send(key, 'no-such-tenant', 'crm', { path: '/patients/1' }), 'no-such-tenant');
          for (const existing of ['globex', 'initech', 'ACME']) {
            expect(shape(await send(key, existing, 'crm', { path: '/patients/1' }), existing)).toBe(unknown);
          }
        }
      }
      expect(shape(await q(keys.all!, 'globex', 'crm', { path: '/patients/1' }), 'globex')).not.toMatch(/exist|disabled|bound|found/i);
    });

    it('an unknown system and an existing ungranted one are indistinguishable, on A and on B', async () => {
      for (const tenant of ['acme', 'globex']) {
        const unknown = shape(await q(keys.crm!, tenant, 'no-such-system', { path: '/x' }), 'no-such-system');
        expect(shape(await q(keys.crm!, tenant, 'erp', { path: '/x' }), 'erp')).toBe(unknown);
        expect(shape(await q(keys.crm!, tenant, 'billing', { path: '/x' }), 'billing')).toBe(unknown);
      }
    });

    it("a caller cannot walk the graph from its own records to B's bindings, URLs or tokens", async () => {
      const key = await createCallerWithGrant(hub, { id: 'a-walker', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'billing' }] });
      const res = await hub.gql(
        `{ viewer { role caller { id tenant { id name bindings { baseUrl } }
             grants { tenant { id bindings { baseUrl credential { kind headerName } } }
                      system { id sharedBaseUrl bindings { tenant { id } baseUrl } } } } }
           invocations(tenantId: "globex", first: 50) { totalCount edges { node { tenantId path } } } }`,
        {},
        { key },
      );
      const text = JSON.stringify(res.body);
      expect(res.body.errors?.length).toBeGreaterThan(0);
      for (const e of res.body.errors!) expect(e.extensions?.code).toBe('FORBIDDEN');
      for (const secret of ['globex', canary.url, String(canary.port), saas.url, `:${saas.port}`, acmeUp.url, 'token', 'billing-key']) {
        expect(text, secret).not.toContain(secret);
      }
    });
  });
});

// A hub per case: these ids are the kind that could break the audit trail for every caller, so
// one case must not hide another.
describe.each(testDatabases())('tenant isolation audit of hostile ids on %s', (kind) => {
  let hub: TestHub;
  let canary: Upstream;

  beforeAll(async () => {
    canary = await startUpstream();
  });
  afterAll(async () => {
    await canary?.close();
  });
  beforeEach(async () => {
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/acme` });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: `${canary.url}/globex` });
  });
  afterEach(async () => {
    await hub?.close();
  });

  it.each([
    ['NUL in the tenant id', 'globex\u0000', 'crm'],
    ['NUL in the system id', 'acme', 'crm\u0000'],
    ['a lone high surrogate in the tenant id', 'globex\ud800', 'crm'],
    ['a lone low surrogate in the system id', 'acme', '\udfff'],
    ['an ANSI escape in the tenant id', 'globex\u001b[31m', 'crm'],
    ['a 5000-character tenant id', 'g'.repeat(5000), 'crm'],
    // The record keeps 128 characters: the limit falls inside the emoji's surrogate pair.
    ['an emoji cut by the tenant id limit of a record', `${'g'.repeat(127)}\u{1F600}`, 'crm'],
    ['an emoji cut by the system id limit of a record', 'acme', `${'s'.repeat(127)}\u{1F600}`],
  ])('%s: refused, recorded as FORBIDDEN, and the audit trail keeps working for everyone', async (_, t, s) => {
    const key = await createCallerWithGrant(hub, { id: 'hostile', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm', pathPrefix: '/mine' }] });
    const other = await createCallerWithGrant(hub, { id: 'bystander', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
    const res = await hub.gql(INVOKE_QUERY, { t, s, p: { path: '/mine/1' } }, { key });
    expect(res.body.data?.invoke ?? null).toBeNull();
    expect(REFUSED).toContain(res.body.errors?.[0]?.extensions?.code);
    expect(canary.requests.filter((r) => !r.url.endsWith('/after'))).toEqual([]);
    // Normal calls afterwards, by this caller and another, are served and recorded too.
    expect(expectData(await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/mine/after' } }, { key })).invoke.status).toBe(200);
    expect(expectData(await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/by/after' } }, { key: other })).invoke.status).toBe(200);
    const records = await invocationsOf(hub, 'hostile');
    expect(records.nodes.map((n) => [n.path, n.code])).toEqual([
      ['/mine/after', null],
      ['/mine/1', res.body.errors![0]!.extensions!.code],
    ]);
    expect(records.nodes[1].requestId).toBe(res.body.errors![0]!.extensions!.requestId);
    expect((await invocationsOf(hub, 'bystander')).totalCount).toBe(1);
    const chain = expectData(await hub.gql(`{ verifyInvocationChain { ok checked firstBrokenId } }`));
    expect(chain.verifyInvocationChain).toEqual({ ok: true, checked: 3, firstBrokenId: null });
  });
});

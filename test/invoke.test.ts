// The core promise: a caller sends one invoke; the hub finds that tenant's deployment and token,
// sends the second request and returns the answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

describe.each(testDatabases())('invoke on %s', (kind) => {
  let hub: TestHub;
  let acmeCrm: Upstream; // acme's own deployment of the CRM
  let globexCrm: Upstream; // globex's own deployment
  let shared: Upstream; // the one SaaS deployment of "billing"
  let callerKey: string;

  beforeAll(async () => {
    [acmeCrm, globexCrm, shared] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${acmeCrm.url}/api/v1`, token: 'acme-crm-token-1' });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: globexCrm.url, token: 'globex-crm-token-2' });
    await hub.admin(`mutation { createSystem(input: { id: "billing", name: "Billing", mode: SHARED, sharedBaseUrl: "${shared.url}/saas" }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "billing", credential: { kind: HEADER, headerName: "X-Api-Key", token: "billing-key-3" } }) { baseUrl } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "globex", systemId: "billing" }) { baseUrl } }`);
    callerKey = await createCallerWithGrant(hub, { id: 'globex-portal', tenantId: 'globex', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await Promise.all([acmeCrm, globexCrm, shared].map((u) => u?.close()));
  });

  it("sends the call to the tenant's own deployment with the tenant's token", async () => {
    const res = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/patients/7', query: { full: true, tag: ['a', 'b'] } } }, { key: callerKey });
    expect(res.body.errors).toBeUndefined();
    const r = res.body.data.invoke;
    expect(r.status).toBe(200);
    expect(r.ok).toBe(true);
    expect(acmeCrm.requests).toHaveLength(1);
    expect(globexCrm.requests).toHaveLength(0);
    const sent = acmeCrm.requests[0]!;
    expect(sent.method).toBe('GET');
    expect(sent.url).toBe('/api/v1/patients/7?full=true&tag=a&tag=b');
    expect(sent.headers.authorization).toBe('Bearer acme-crm-token-1');
    expect(sent.headers['x-request-id']).toBe(r.requestId);
    expect(r.data.url).toBe('/api/v1/patients/7?full=true&tag=a&tag=b');
    // allow-listed response headers only
    expect(r.headers['content-type']).toMatch(/application\/json/);
    expect(r.headers.etag).toBe('"e1"');
    expect(r.headers['x-secret-internal']).toBeUndefined();
    expect(r.durationMs).toBeGreaterThan(0);
  });

  it('routes a SHARED system by the tenant header and injects a HEADER credential', async () => {
    const res = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'billing', p: { path: '/invoices' } }, { key: callerKey });
    expect(res.body.errors).toBeUndefined();
    const sent = shared.requests.at(-1)!;
    expect(sent.url).toBe('/saas/invoices');
    expect(sent.headers['x-tenant-id']).toBe('acme');
    expect(sent.headers['x-api-key']).toBe('billing-key-3');
    expect(sent.headers.authorization).toBeUndefined();
  });

  it('sends any method with a JSON body through Mutation.invoke, in document order', async () => {
    const before = acmeCrm.requests.length;
    const res = await hub.gql(
      `mutation($b: JSON) {
        first: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/notes", body: $b }) { status data }
        second: invoke(tenantId: "acme", systemId: "crm", params: { method: DELETE, path: "/notes/1" }) { status }
        third: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/notes", body: $b }) { status }
      }`,
      { b: { text: 'hello', n: 1 } },
      { key: callerKey },
    );
    expect(res.body.errors).toBeUndefined();
    const sent = acmeCrm.requests.slice(before);
    expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /api/v1/notes', 'DELETE /api/v1/notes/1', 'POST /api/v1/notes']);
    expect(sent[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(sent[0]!.body)).toEqual({ text: 'hello', n: 1 });
  });

  it('returns non-2xx answers as data, not errors, and never follows redirects', async () => {
    acmeCrm.route('/api/v1/missing', (_, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such thing');
    });
    acmeCrm.route('/api/v1/moved', (_, res) => {
      res.writeHead(302, { location: `${globexCrm.url}/stolen` });
      res.end();
    });
    const res = await hub.gql(
      `{ a: invoke(tenantId: "acme", systemId: "crm", params: { path: "/missing" }) { status ok data }
         b: invoke(tenantId: "acme", systemId: "crm", params: { path: "/moved" }) { status ok headers data } }`,
      {},
      { key: callerKey },
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.a).toEqual({ status: 404, ok: false, data: 'no such thing' });
    expect(res.body.data.b.status).toBe(302);
    expect(res.body.data.b.headers.location).toBe(`${globexCrm.url}/stolen`);
    expect(res.body.data.b.data).toBeNull();
    expect(globexCrm.requests.filter((r) => r.url === '/stolen')).toHaveLength(0);
  });

  it('answers HEAD with status and headers, and no data', async () => {
    const res = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { method: 'HEAD', path: '/patients/7' } }, { key: callerKey });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.invoke.status).toBe(200);
    expect(res.body.data.invoke.data).toBeNull();
    expect(acmeCrm.requests.at(-1)!.method).toBe('HEAD');
  });

  it('refuses unsafe methods in Query.invoke before anything is sent', async () => {
    const before = acmeCrm.requests.length;
    const res = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { method: 'POST', path: '/notes' } }, { key: callerKey });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(acmeCrm.requests.length).toBe(before);
  });

  it('lets a mutation invoke reach the upstream with the caller headers it may send', async () => {
    const res = await hub.gql(INVOKE_MUTATION, { t: 'acme', s: 'crm', p: { method: 'PUT', path: '/x', headers: { 'X-Trace-Me': 'yes', Accept: 'text/plain' }, body: [1, 2] } }, { key: callerKey });
    expect(res.body.errors).toBeUndefined();
    const sent = acmeCrm.requests.at(-1)!;
    expect(sent.headers['x-trace-me']).toBe('yes');
    expect(sent.headers.accept).toBe('text/plain');
    expect(sent.body).toBe('[1,2]');
  });
});

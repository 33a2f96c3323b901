// Attack suite, HTTP hardening (issue 3, part 8): every response the hub writes, answers and errors
// alike, keeps browsers from sniffing, framing, leaking referrers or caching GraphQL answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { seedExclusive } from '../helpers/seed.js';
import { rawRequest, startCanary, type Canary, type RawResponse } from '../helpers/security-canary.js';
import { startTestHub, type TestHub } from '../helpers/test-hub.js';

const GQL_JSON = 'application/graphql-response+json';

interface Case {
  label: string;
  status: number;
  /** a GraphQL answer: must also carry cache-control: no-store */
  graphql: boolean;
  send: (hub: TestHub) => Promise<RawResponse>;
}

const post = (body: string, headers: Record<string, string> = {}, chunked = false) => (hub: TestHub) =>
  rawRequest(hub.url, { headers: { 'content-type': 'application/json', accept: GQL_JSON, authorization: `Bearer ${hub.adminKey}`, ...headers }, body, chunked });
const get = (path: string, headers: Record<string, string> = {}) => (hub: TestHub) => rawRequest(hub.url, { method: 'GET', path, headers });
const query = (q: string) => JSON.stringify({ query: q });
// Every document that can carry one carries an invoke: a refused request must not reach the canary.
const INVOKE = 'invoke(tenantId: "acme", systemId: "crm", params: { path: "/headers" }) { status }';
const DOC = `{ viewer { role } ${INVOKE} }`;
const big = JSON.stringify({ query: `${DOC} # ${'x'.repeat(3000)}` });

const CASES: Case[] = [
  { label: 'a GraphQL answer (POST)', status: 200, graphql: true, send: post(query(DOC)) },
  { label: 'a GraphQL answer (POST, Accept: application/json)', status: 200, graphql: true, send: post(query(DOC), { accept: 'application/json' }) },
  {
    label: 'a GraphQL answer (GET)',
    status: 200,
    graphql: true,
    send: (hub) => get(`/graphql?query=${encodeURIComponent(DOC)}`, { accept: GQL_JSON, authorization: `Bearer ${hub.adminKey}` })(hub),
  },
  { label: 'a field error (200)', status: 200, graphql: true, send: post(query('{ invocations(first: 100000) { totalCount } }')) },
  { label: 'a validation error (400)', status: 400, graphql: true, send: post(query(`{ nope ${INVOKE} }`)) },
  { label: 'malformed JSON (400)', status: 400, graphql: true, send: post('{"query": ') },
  { label: 'operation batching (400)', status: 400, graphql: true, send: post(JSON.stringify([{ query: DOC }])) },
  { label: 'no API key (401)', status: 401, graphql: true, send: post(query(DOC), { authorization: '' }) },
  {
    label: 'a mutation over GET (405)',
    status: 405,
    graphql: true,
    send: (hub) => get(`/graphql?query=${encodeURIComponent(`mutation { deleteTenant(id: "nobody") ${INVOKE} }`)}`, { accept: GQL_JSON, authorization: `Bearer ${hub.adminKey}` })(hub),
  },
  { label: 'text/plain (415)', status: 415, graphql: true, send: post(query(DOC), { 'content-type': 'text/plain' }) },
  { label: 'a form post (415)', status: 415, graphql: true, send: post(`query=${encodeURIComponent(DOC)}`, { 'content-type': 'application/x-www-form-urlencoded' }) },
  { label: 'a body over the limit (413)', status: 413, graphql: true, send: post(big) },
  { label: 'a chunked body over the limit (413)', status: 413, graphql: true, send: post(big, {}, true) },
  { label: 'GET /healthz', status: 200, graphql: false, send: get('/healthz') },
  { label: 'GET /readyz', status: 200, graphql: false, send: get('/readyz') },
  { label: 'GraphiQL (text/html)', status: 200, graphql: false, send: get('/graphql', { accept: 'text/html' }) },
  { label: 'an unknown path (404)', status: 404, graphql: false, send: get('/admin/../etc/passwd') },
];

function expectHardened(res: RawResponse, graphql: boolean) {
  const h = res.headers;
  expect(h['x-content-type-options']).toBe('nosniff');
  expect(h['x-frame-options']).toBe('DENY');
  expect(h['referrer-policy']).toBe('no-referrer');
  expect(h['content-security-policy'] ?? '').toMatch(/frame-ancestors 'none'/);
  expect(h['x-powered-by']).toBeUndefined();
  if (graphql) {
    expect(h['cache-control'] ?? '').toMatch(/\bno-store\b/);
    // Data, not a document: no script may run in it even if a browser renders it.
    expect(h['content-security-policy']).toMatch(/default-src 'none'/);
  }
}

describe.each(testDatabases())('HTTP headers on %s', (kind) => {
  let hub: TestHub;
  let canary: Canary;

  beforeAll(async () => {
    canary = await startCanary();
    hub = await startTestHub(kind, { env: { HUB_MAX_REQUEST_BYTES: '2000' } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: canary.url });
  });
  afterAll(async () => {
    await hub?.close();
    await canary?.close();
  });

  it.each(CASES)('hardens $label', async ({ status, graphql, send }) => {
    const hits = canary.hits();
    const res = await send(hub);
    expect(res.status, res.text.slice(0, 300)).toBe(status);
    expectHardened(res, graphql);
    if (status >= 400) expect(canary.hits(), 'a refused request reached the canary').toBe(hits);
  });

  it('serves GraphiQL with a CSP that forbids framing, base URIs and form targets', async () => {
    const res = await get('/graphql', { accept: 'text/html' })(hub);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    const csp = res.headers['content-security-policy'] ?? '';
    for (const directive of ["frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) expect(csp).toContain(directive);
    // Self-contained: the page loads nothing from a CDN.
    expect(res.text).not.toMatch(/<script[^>]+src=["']https?:\/\/|<link[^>]+href=["']https?:\/\//i);
  });

  describe('throttled authentication (HUB_AUTH_FAILURES_PER_MINUTE=1)', () => {
    let throttled: TestHub;
    beforeAll(async () => {
      throttled = await startTestHub(kind, { env: { HUB_AUTH_FAILURES_PER_MINUTE: '1' } });
    });
    afterAll(async () => {
      await throttled?.close();
    });

    it('hardens the 429 answer to repeated failed authentication too', async () => {
      const bad = post(query(DOC), { authorization: `Bearer thub_${'Z'.repeat(43)}` });
      const first = await bad(throttled);
      expect(first.status).toBe(401);
      expectHardened(first, true);
      const second = await bad(throttled);
      expect(second.status).toBe(429);
      expect(second.json?.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
      expectHardened(second, true);
    });
  });
});

// The invoke fast path (src/http/invoke-fast-path.ts) answers exactly as yoga does. Two hubs on
// the same kind of database, one with HUB_FAST_PATH=false, get the same raw HTTP requests; their
// answers (status, headers, body) must match once the values that differ by nature (request ids,
// trace ids, durations, dates) are blanked. /metrics shows which requests the fast path served.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly these headers (fetch would add its own). */
function send(url: string, headers: Record<string, string>, body: string | Buffer, method = 'POST', path = '/graphql'): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const VARYING_HEADERS = new Set(['date', 'content-length', 'connection', 'keep-alive']);

/** The answer with what differs between two runs of one request blanked. */
function comparable(a: RawAnswer) {
  const headers = Object.fromEntries(Object.entries(a.headers).filter(([name]) => !VARYING_HEADERS.has(name)));
  if (headers['retry-after']) headers['retry-after'] = '<seconds>';
  const body = a.body
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
    .replace(/00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]/g, '<traceparent>')
    .replace(/"durationMs":[0-9.e-]+/g, '"durationMs":0')
    .replace(/"retryAfterMs":\d+/g, '"retryAfterMs":0');
  return { status: a.status, headers, body };
}

const ONE = 'query One($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) { status ok headers data durationMs requestId replayed } }';
const TEN = `query Ten($p: InvokeParams!) { ${Array.from({ length: 10 }, (_, i) => `a${i}: invoke(tenantId: "acme", systemId: "crm", params: $p) { status data }`).join(' ')} }`;
const MUTATE = 'mutation Send($p: InvokeParams!) { invoke(tenantId: "acme", systemId: "crm", params: $p) { status ok data } }';
const LITERALS = `query { ${Array.from({ length: 4 }, (_, i) => `l${i}: invoke(tenantId: "acme", systemId: "crm", params: { path: "/lit/${i}", query: { n: ${i}, tags: ["a", "b"] } }) { status ok data }`).join(' ')} }`;
const MIXED = `query Mixed($p: InvokeParams!) {
  ok: invoke(tenantId: "acme", systemId: "crm", params: $p) { status data }
  leaves: invoke(tenantId: "acme", systemId: "crm", params: { path: "/../admin" }) { status }
  nobody: invoke(tenantId: "nobody", systemId: "crm", params: $p) { status }
  header: invoke(tenantId: "acme", systemId: "crm", params: { path: "/h", headers: { Authorization: "Bearer x" } }) { status }
  failed: invoke(tenantId: "acme", systemId: "crm", params: { path: "/fail" }) { status ok data }
  down: invoke(tenantId: "acme", systemId: "down", params: $p) { status }
  post: invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/q" }) { status }
}`;
const TWO_MUTATIONS = 'mutation Two($p: InvokeParams!) { first: invoke(tenantId: "acme", systemId: "crm", params: $p) { status data } second: invoke(tenantId: "acme", systemId: "down", params: $p) { status } third: invoke(tenantId: "acme", systemId: "crm", params: { method: PUT, path: "/orders/1", body: { n: 3 } }) { status ok } }';
const JSON_HEADERS = { 'content-type': 'application/json' };

type Key = 'caller' | 'admin' | 'ungranted' | 'bad' | 'none';
interface Case {
  name: string;
  key?: Key;
  headers?: Record<string, string>;
  /** an object is sent as JSON; a string or Buffer as it is */
  body: unknown;
  /**
   * the fast path runs it on the operation's compiled plan ('planned'), or otherwise ('served': no
   * plan for it, variables the plan hands back, authentication failed); false: it goes to yoga,
   * before or after its body is read
   */
  fast: 'planned' | 'served' | false;
}

const one = (p: unknown, extra: Record<string, unknown> = {}) => ({ query: ONE, variables: { t: 'acme', s: 'crm', p }, ...extra });

const CASES: Case[] = [
  { name: 'one invoke, no Accept', body: one({ path: '/patients/1' }), fast: 'planned' },
  { name: 'one invoke, Accept */*', headers: { accept: '*/*' }, body: one({ path: '/patients/2' }), fast: 'planned' },
  { name: 'one invoke, Accept application/json', headers: { accept: 'application/json' }, body: one({ path: '/p/3', query: { a: 1 } }), fast: 'planned' },
  { name: 'one invoke, graphql-response+json', headers: { accept: 'application/graphql-response+json' }, body: one({ path: '/p/4' }), fast: 'planned' },
  { name: 'one invoke, both media types', headers: { accept: 'application/graphql-response+json, application/json' }, body: one({ path: '/p/5' }), fast: 'planned' },
  { name: 'content type with charset', headers: { 'content-type': 'application/json; charset=utf-8' }, body: one({ path: '/p/6' }), fast: 'planned' },
  { name: 'json listed before graphql-response+json', headers: { accept: 'application/json, application/graphql-response+json' }, body: one({ path: '/p/6b' }), fast: 'planned' },
  { name: 'ten identical invokes', body: { query: TEN, variables: { p: { path: '/same' } } }, fast: 'planned' },
  { name: 'mutation invoke with a body', body: { query: MUTATE, variables: { p: { method: 'POST', path: '/orders', body: { n: 1 } } } }, fast: 'planned' },
  { name: 'upstream answers 500', body: one({ path: '/fail' }), fast: 'planned' },
  { name: 'unreachable system', body: { query: ONE, variables: { t: 'acme', s: 'down', p: { path: '/x' } } }, fast: 'planned' },
  { name: 'no grant for the tenant', key: 'ungranted', body: one({ path: '/p/7' }), fast: 'planned' },
  { name: 'path that leaves the base', body: one({ path: '/../admin' }), fast: 'planned' },
  { name: 'refused header', body: one({ path: '/p', headers: { Authorization: 'Bearer x' } }), fast: 'planned' },
  { name: 'unknown tenant', body: { query: ONE, variables: { t: 'nobody', s: 'crm', p: { path: '/p' } } }, fast: 'planned' },
  { name: 'no key', key: 'none', body: one({ path: '/p/8' }), fast: 'served' },
  { name: 'unknown key', key: 'bad', body: one({ path: '/p/9' }), fast: 'served' },
  { name: 'missing variable', body: { query: ONE, variables: { t: 'acme', s: 'crm' } }, fast: 'served' },
  { name: 'variable of the wrong type', body: { query: ONE, variables: { t: 'acme', s: 'crm', p: { path: 5 } } }, fast: 'served' },
  { name: 'unknown method in a variable', body: one({ method: 'BREW', path: '/p' }), fast: 'served' },
  { name: 'Query.invoke with POST', body: one({ method: 'POST', path: '/p' }), fast: 'planned' },
  { name: '__typename and @skip', body: { query: 'query { invoke(tenantId: "acme", systemId: "crm", params: { path: "/t" }) { __typename status data @skip(if: true) } }' }, fast: 'served' },
  { name: 'operation chosen by name', body: { query: `${ONE} query Other { invoke(tenantId: "acme", systemId: "crm", params: { path: "/o" }) { status } }`, operationName: 'Other' }, fast: 'planned' },
  { name: 'explicit null variables and operationName', body: { query: 'query { invoke(tenantId: "acme", systemId: "crm", params: { path: "/n" }) { status } }', variables: null, operationName: null }, fast: 'planned' },
  // Compiled plans: literal arguments (coerced once, shared by every request), aliases, every
  // kind of field error in one document, mutations one after another.
  { name: 'literal arguments, first request', body: { query: LITERALS }, fast: 'planned' },
  { name: 'literal arguments, same document again', body: { query: LITERALS }, fast: 'planned' },
  { name: 'aliases and __typename', body: { query: 'query { a: invoke(tenantId: "acme", systemId: "crm", params: { path: "/al" }) { __typename s: status d: data } b: invoke(tenantId: "acme", systemId: "crm", params: { path: "/al2" }) { ok } }' }, fast: 'planned' },
  { name: 'every kind of field error in one document', body: { query: MIXED, variables: { p: { path: '/mixed' } } }, fast: 'planned' },
  { name: 'two mutation invokes, in order', body: { query: TWO_MUTATIONS, variables: { p: { method: 'POST', path: '/orders', body: { n: 2 } } } }, fast: 'planned' },
  // Left to yoga, after the body was read:
  { name: 'invoke beside another field', body: { query: 'query { viewer { role } invoke(tenantId: "acme", systemId: "crm", params: { path: "/v" }) { status } }' }, fast: false },
  { name: 'admin mutation', key: 'admin', body: { query: 'mutation { createTenant(input: { id: "parity", name: "Parity" }) { id } }' }, fast: false },
  { name: 'unknown field (validation error)', body: { query: 'query { invoke(tenantId: "acme", systemId: "crm", params: { path: "/u" }) { statuz } }' }, fast: false },
  { name: 'syntax error', body: { query: 'query { invoke(' }, fast: false },
  { name: 'operation name that matches nothing', body: { ...one({ path: '/m' }), operationName: 'Missing' }, fast: false },
  // The same text ran without an operation name above: "" still names no operation.
  { name: 'an empty operation name', body: { ...one({ path: '/m' }), operationName: '' }, fast: false },
  { name: 'two operations, no name', body: { query: `${ONE} query Other { invoke(tenantId: "acme", systemId: "crm", params: { path: "/o" }) { status } }` }, fast: false },
  { name: 'extensions', body: one({ path: '/e' }, { extensions: { persistedQuery: { version: 1, sha256Hash: 'abc' } } }), fast: false },
  { name: 'unknown body parameter', body: one({ path: '/e' }, { foo: 1 }), fast: false },
  { name: 'variables as a string', body: one({ path: '/e' }, { variables: '{"t":"acme"}' }), fast: false },
  { name: 'body not JSON', body: '{"query": ', fast: false },
  { name: 'a JSON array (batching is off)', body: [one({ path: '/b' })], fast: false },
  { name: 'query not a string', body: { query: 42 }, fast: false },
  { name: 'introspection', body: { query: '{ __schema { queryType { name } } }' }, fast: false },
  { name: 'a document longer than the fast path remembers', body: one({ path: '/long' }, { query: ONE + ' '.repeat(5000) }), fast: false },
  // Bytes that are not UTF-8 inside a JSON string: yoga gets the same bytes the client sent.
  { name: 'a body that is not UTF-8', body: Buffer.concat([Buffer.from('{"query":"{ viewer { role } }","operationName":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), fast: false },
  // Left to yoga before the body is read:
  { name: 'Origin header (CORS)', headers: { origin: 'https://portal.example' }, body: one({ path: '/c' }), fast: false },
  { name: 'Accept text/event-stream', headers: { accept: 'text/event-stream' }, body: one({ path: '/s' }), fast: false },
  { name: 'text/plain body', headers: { 'content-type': 'text/plain' }, body: one({ path: '/t' }), fast: false },
  // Yoga's JSON parser matches the media type case-sensitively and with ";" right after it.
  { name: 'Application/JSON (yoga: 415)', headers: { 'content-type': 'Application/JSON' }, body: one({ path: '/ct1' }), fast: false },
  { name: 'space before the charset separator', headers: { 'content-type': 'application/json ;charset=utf-8' }, body: one({ path: '/ct2' }), fast: false },
];

describe.each(testDatabases())('the invoke fast path answers as yoga does, on %s', (kind) => {
  let fast: TestHub;
  let plain: TestHub;
  let upstream: Upstream;
  const keys = new Map<TestHub, Record<Key, string | null>>();

  async function seed(hub: TestHub) {
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${upstream.url}/api`, token: 'acme-crm-token' });
    // A port nothing listens on: connection refused.
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'down', baseUrl: 'http://127.0.0.1:9' });
    await hub.admin(`mutation { createTenant(input: { id: "globex", name: "Globex" }) { id } }`);
    const caller = await createCallerWithGrant(hub, { id: 'portal', tenantId: 'globex', grants: [{ tenantId: 'acme', methods: ['GET', 'POST'] }] });
    const ungranted = await createCallerWithGrant(hub, { id: 'stranger', grants: [] });
    keys.set(hub, { caller, admin: hub.adminKey, ungranted, bad: 'thub_' + 'x'.repeat(40), none: null });
  }

  beforeAll(async () => {
    upstream = await startUpstream();
    upstream.route('/api/fail', (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"boom"}');
    });
    [fast, plain] = await Promise.all([startTestHub(kind), startTestHub(kind, { env: { HUB_FAST_PATH: 'false' } })]);
    await Promise.all([seed(fast), seed(plain)]);
  });
  afterAll(async () => {
    await Promise.all([fast?.close(), plain?.close()]);
    await upstream?.close();
  });

  async function ask(hub: TestHub, c: Case): Promise<RawAnswer> {
    const key = keys.get(hub)![c.key ?? 'caller'];
    const body = typeof c.body === 'string' || Buffer.isBuffer(c.body) ? c.body : JSON.stringify(c.body);
    return send(hub.url, { ...JSON_HEADERS, ...(key ? { authorization: `Bearer ${key}` } : {}), ...c.headers }, body);
  }

  async function fastPathCounts(hub: TestHub): Promise<{ planned: number; served: number; yoga: number }> {
    const text = await (await fetch(`${hub.url}/metrics`)).text();
    const count = (outcome: string) => Number(new RegExp(`^hub_fast_path_requests_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { planned: count('planned'), served: count('served'), yoga: count('yoga') };
  }

  /** The error lines a hub logged since line `from`, by logger and message. */
  const errorLines = (hub: TestHub, from: number) =>
    hub.logs
      .slice(from)
      .map((line) => JSON.parse(line) as { level: string; logger: string; msg: string })
      .filter((l) => l.level === 'error')
      .map((l) => `${l.logger}: ${l.msg}`.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<uuid>'));

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await fastPathCounts(fast);
    const logsBefore = [fast.logs.length, plain.logs.length];
    const answers = [];
    // One after the other: the upstream's record and the registry must see the same sequence.
    for (const hub of [fast, plain]) answers.push(await ask(hub, c));
    const [viaFast, viaYoga] = answers.map(comparable);
    expect(viaFast).toEqual(viaYoga);
    // The same error lines too (yoga logs each error it masks).
    expect(errorLines(fast, logsBefore[0]!)).toEqual(errorLines(plain, logsBefore[1]!));
    const after = await fastPathCounts(fast);
    expect([after.planned - before.planned, after.served - before.served]).toEqual([c.fast === 'planned' ? 1 : 0, c.fast === 'served' ? 1 : 0]);
    expect(await fastPathCounts(plain)).toEqual({ planned: 0, served: 0, yoga: 0 });
  });

  it('leaves a body it cannot use intact for yoga, however it arrived', async () => {
    // Split over several TCP writes: the fast path reads it whole, then yoga parses the same text.
    const body = JSON.stringify({ query: '{ viewer { role } }' });
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      const req = request(`${fast.url}/graphql`, { method: 'POST', headers: { ...JSON_HEADERS, authorization: `Bearer ${fast.adminKey}`, 'content-length': String(body.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (ch: Buffer) => chunks.push(ch));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.flushHeaders();
      const parts = [body.slice(0, 5), body.slice(5, 17), body.slice(17)];
      const next = () => {
        const part = parts.shift();
        if (part === undefined) return req.end();
        req.write(part);
        setTimeout(next, 20);
      };
      next();
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ data: { viewer: { role: 'ADMIN' } } });
  });

  // Last: from here on every request from this address is throttled for a minute.
  it('answers the failed-authentication throttle (429, Retry-After) the same way', async () => {
    const c: Case = { name: 'bad key, repeatedly', key: 'bad', body: one({ path: '/r' }), fast: 'served' };
    let last: [RawAnswer, RawAnswer] | undefined;
    // The default throttle allows 20 failures per minute per address; both hubs saw the same ones.
    for (let i = 0; i < 25; i++) last = [await ask(fast, c), await ask(plain, c)];
    expect(last![0].status).toBe(429);
    expect(comparable(last![0])).toEqual(comparable(last![1]));
    expect(last![0].headers['retry-after']).toMatch(/^\d+$/);
  });
});

// The invoke rules of the contract (design/API.md "Invoke rules" and "Error codes"), checked end to
// end: real GraphQL over HTTP into a real hub, real loopback servers as the called systems. Every
// refusal must be BAD_USER_INPUT with nothing sent; every upstream failure must carry its code and
// leave an invocation record; upstream bodies never leak into error messages.
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const codeOf = (res: GqlResponse) => res.body.errors?.[0]?.extensions?.code as string | undefined;

interface InvocationNode {
  code: string | null;
  status: number | null;
  path: string;
  method: string;
  durationMs: number;
}

/** Newest first; the admin read flushes the audit buffer before it reads. */
async function invocationsOf(hub: TestHub, systemId: string): Promise<InvocationNode[]> {
  const data = await hub.admin(
    `query($s: ID) { invocations(first: 5, systemId: $s) { edges { node { code status path method durationMs } } } }`,
    { s: systemId },
  );
  return data.invocations.edges.map((e: { node: InvocationNode }) => e.node);
}

/** A port that nothing listens on: bound once by us, then released. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sends `total` bytes of `fill` in chunks without a content-length (chunked transfer-encoding). */
function chunked(res: ServerResponse, total: number, fill: string) {
  res.writeHead(200, { 'content-type': 'text/plain' });
  const piece = fill.repeat(Math.ceil(500 / fill.length)).slice(0, 500);
  for (let sent = 0; sent < total; sent += 500) res.write(piece.slice(0, Math.min(500, total - sent)));
  res.end();
}

function fixed(res: ServerResponse, total: number, fill: string) {
  const body = fill.repeat(Math.ceil(total / fill.length)).slice(0, total);
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

describe.each(testDatabases())('invoke rules on %s', (kind) => {
  let hub: TestHub;
  let canary: Upstream; // acme's own CRM deployment (EXCLUSIVE, base path /api)
  let saas: Upstream; // one SaaS deployment shared by the SHARED systems
  let flaky: Upstream; // scripted failures
  let callerKey: string;
  const sentTotal = () => canary.requests.length + saas.requests.length;

  const invoke = (systemId: string, p: Record<string, unknown>, key: string | null = callerKey) =>
    hub.gql(INVOKE_QUERY, { t: 'acme', s: systemId, p }, { key });
  const invokeMutation = (systemId: string, p: Record<string, unknown>, key: string | null = callerKey) =>
    hub.gql(INVOKE_MUTATION, { t: 'acme', s: systemId, p }, { key });

  beforeAll(async () => {
    [canary, saas, flaky] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    // One attempt per call: these tests pin down how each failure of a single exchange is
    // reported (retries and breaking are in resilience.test.ts).
    hub = await startTestHub(kind, { env: { HUB_RETRY_MAX: '0' } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/api`, token: 'crm-token-secret-1' });
    // SHARED with a custom tenant header and a HEADER credential.
    await hub.admin(`mutation { createSystem(input: { id: "org-saas", name: "Org SaaS", mode: SHARED, sharedBaseUrl: "${saas.url}/org", tenantHeader: "X-Org" }) { id } }`);
    await hub.admin(
      `mutation { bindSystem(input: { tenantId: "acme", systemId: "org-saas", credential: { kind: HEADER, headerName: "X-Api-Key", token: "org-key-secret-2" } }) { baseUrl } }`,
    );
    // SHARED with the default tenant header, no credential.
    await hub.admin(`mutation { createSystem(input: { id: "plain-saas", name: "Plain SaaS", mode: SHARED, sharedBaseUrl: "${saas.url}/plain" }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "plain-saas" }) { baseUrl } }`);
    // Failure scripts: a short deadline, a normal one, and a port nobody listens on.
    await hub.admin(`mutation { createSystem(input: { id: "slow", name: "Slow", mode: EXCLUSIVE, timeoutMs: 300 }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "slow", baseUrl: "${flaky.url}" }) { baseUrl } }`);
    await hub.admin(`mutation { createSystem(input: { id: "flaky", name: "Flaky", mode: EXCLUSIVE, timeoutMs: 5000 }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "flaky", baseUrl: "${flaky.url}" }) { baseUrl } }`);
    await hub.admin(`mutation { createSystem(input: { id: "gone", name: "Gone", mode: EXCLUSIVE, timeoutMs: 5000 }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "gone", baseUrl: "http://127.0.0.1:${await closedPort()}" }) { baseUrl } }`);
    callerKey = await createCallerWithGrant(hub, { id: 'acme-portal', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await Promise.all([canary, saas, flaky].map((u) => u?.close()));
  });

  describe('path confinement', () => {
    const refused: [string, string][] = [
      ['an absolute URL', 'http://evil/x'],
      ['a scheme-relative URL', '//evil/x'],
      ['no leading slash', 'patients/7'],
      ['an empty path', ''],
      ['a backslash', '/a\\b'],
      ['".." at the root', '/../x'],
      ['".." climbing above the base', '/a/../../x'],
      ['a trailing ".."', '/a/..'],
      ['a "." segment', '/./x'],
      ['"%2e%2e"', '/%2e%2e/x'],
      ['"%2E%2E"', '/%2E%2E/x'],
      ['".%2e"', '/.%2e/x'],
      ['an encoded "." segment', '/a/%2e/b'],
      ['double-encoded "%252e%252e"', '/%252e%252e/x'],
      ['".." between encoded slashes', '/a%2f..%2fb'],
      ['an encoded backslash', '/%5c..'],
      ['an encoded NUL', '/a%00b'],
      ['a raw LF', '/a\nb'],
      ['a raw CR', '/a\rb'],
      ['a raw TAB', '/a\tb'],
      ['a raw DEL', '/a\u007fb'],
      ['a raw NUL', '/a\u0000b'],
      ['"?"', '/a?b=1'],
      ['"#"', '/a#b'],
      ['"//" inside', '/a//b'],
      ['an encoded second slash ("/%2f" = "//host")', '/%2fevil.example/x'],
      ['an encoded absolute URL', '/http%3a%2f%2fevil/x'],
      ['a malformed escape "%zz"', '/a%zz'],
      ['a truncated escape', '/a%2'],
      ['more than 2048 characters', `/${'a'.repeat(2048)}`],
    ];

    it.each(refused)('refuses %s with BAD_USER_INPUT and sends nothing', async (_label, path) => {
      const before = sentTotal();
      const res = await invoke('crm', { path });
      expect(res.status).toBe(200);
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(res.body.data?.invoke ?? null).toBeNull();
      // Mutation.invoke applies the same rules.
      const mut = await invokeMutation('crm', { method: 'POST', path, body: { x: 1 } });
      expect(codeOf(mut)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it('leaves a BAD_USER_INPUT invocation record for a refused path', async () => {
      const res = await invoke('crm', { path: '/a/../../etc/passwd' });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      const [latest] = await invocationsOf(hub, 'crm');
      expect(latest).toMatchObject({ code: 'BAD_USER_INPUT', status: null, path: '/a/../../etc/passwd', method: 'GET' });
    });

    it.each([
      ['/patients/7', '/patients/7', '/api/patients/7'],
      ['/a%20b', '/a%20b', '/api/a%20b'],
      ['/a:b@c', '/a:b@c', '/api/a:b@c'],
      ['/', '/', '/api/'],
      ['a path of exactly 2048 characters', `/${'a'.repeat(2047)}`, `/api/${'a'.repeat(2047)}`],
    ])('lets the legitimate path %s through, under the base path', async (_label, path, expected) => {
      const before = canary.requests.length;
      const res = await invoke('crm', { path });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
      expect(canary.requests.length).toBe(before + 1);
      expect(canary.requests.at(-1)!.url).toBe(expected);
    });
  });

  describe('header rules', () => {
    const reserved = [
      'Authorization',
      'authorization',
      'AUTHORIZATION',
      'Proxy-Authorization',
      'Cookie',
      'cOOkie',
      'Host',
      'Connection',
      'Keep-Alive',
      'Proxy-Connection',
      'TE',
      'Trailer',
      'Transfer-Encoding',
      'Upgrade',
      'Content-Length',
      'Forwarded',
      'X-Forwarded-For',
      'X-Forwarded-Host',
      'x-forwarded-proto',
      // the system's tenant header (X-Org), in any case
      'x-org',
      'X-Org',
      'X-ORG',
      // the binding's HEADER credential
      'X-Api-Key',
      'x-api-key',
    ];

    it.each(reserved)('refuses the caller header %s on a SHARED system with a HEADER credential', async (name) => {
      const before = sentTotal();
      const res = await invoke('org-saas', { path: '/things', headers: { [name]: name.toLowerCase() === 'content-length' ? '0' : 'globex' } });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it.each(['X-Tenant-Id', 'x-tenant-id', 'X-TENANT-ID'])('refuses the default tenant header %s on a SHARED system', async (name) => {
      const before = sentTotal();
      const res = await invoke('plain-saas', { path: '/things', headers: { [name]: 'globex' } });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it.each([
      ['a CR in a value', { 'X-Note': 'a\rb' }],
      ['a LF in a value', { 'X-Note': 'a\nb' }],
      ['a CRLF header injection', { 'X-Note': 'a\r\nX-Org: globex' }],
      ['a NUL in a value', { 'X-Note': 'a\u0000b' }],
      ['a space in a name', { 'X Note': 'v' }],
      ['a leading space in a name', { ' X-Note': 'v' }],
      ['a colon in a name', { 'X-Note:': 'v' }],
      ['a name smuggling a header', { 'X-Note: v\r\nX-Org': 'globex' }],
      ['a CR in a name', { 'X-Note\r': 'v' }],
      ['an empty name', { '': 'v' }],
      ['a number value', { 'X-Note': 1 }],
      ['a boolean value', { 'X-Note': true }],
      ['a null value', { 'X-Note': null }],
      ['an array value', { 'X-Note': ['a', 'b'] }],
      ['an object value', { 'X-Note': { a: 'b' } }],
    ] as [string, Record<string, unknown>][])('refuses %s', async (_label, headers) => {
      const before = sentTotal();
      const res = await invoke('org-saas', { path: '/things', headers });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it.each([
      ['a string', 'X-Note: v'],
      ['an array', [['X-Note', 'v']]],
      ['a number', 42],
      ['a boolean', true],
    ] as [string, unknown][])('refuses headers given as %s', async (_label, headers) => {
      const before = sentTotal();
      const res = await invoke('org-saas', { path: '/things', headers });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it('leaves a BAD_USER_INPUT invocation record for a refused header', async () => {
      const res = await invoke('org-saas', { path: '/refused-header', headers: { 'X-Org': 'globex' } });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      const [latest] = await invocationsOf(hub, 'org-saas');
      expect(latest).toMatchObject({ code: 'BAD_USER_INPUT', status: null, path: '/refused-header' });
    });

    it('passes allowed custom headers through, next to the tenant header and the credential only the hub sets', async () => {
      const before = saas.requests.length;
      const res = await invoke('org-saas', { path: '/things', headers: { 'X-Custom-Trace': 'abc-123', 'Accept-Language': 'de-CH', 'x-lower': 'v' } });
      expect(res.body.errors).toBeUndefined();
      expect(saas.requests.length).toBe(before + 1);
      const sent = saas.requests.at(-1)!;
      expect(sent.url).toBe('/org/things');
      expect(sent.headers['x-custom-trace']).toBe('abc-123');
      expect(sent.headers['accept-language']).toBe('de-CH');
      expect(sent.headers['x-lower']).toBe('v');
      expect(sent.headers['x-org']).toBe('acme');
      expect(sent.headers['x-api-key']).toBe('org-key-secret-2');
      expect(sent.headers.authorization).toBeUndefined();
    });

    it('passes allowed headers through Mutation.invoke on the default-header system', async () => {
      const before = saas.requests.length;
      const res = await invokeMutation('plain-saas', { method: 'PATCH', path: '/things/1', headers: { 'If-Match': '"v1"' }, body: { a: 1 } });
      expect(res.body.errors).toBeUndefined();
      expect(saas.requests.length).toBe(before + 1);
      const sent = saas.requests.at(-1)!;
      expect(sent.method).toBe('PATCH');
      expect(sent.headers['if-match']).toBe('"v1"');
      expect(sent.headers['x-tenant-id']).toBe('acme');
    });
  });

  describe('query encoding', () => {
    it('repeats keys for arrays, stringifies numbers and booleans, and percent-encodes special characters', async () => {
      const before = canary.requests.length;
      const res = await invoke('crm', {
        path: '/search',
        query: { tag: ['a', 'b', 3, false], n: 42, f: -1.5, yes: true, no: false, q: 'a&b=c', odd: 'x y+z/ü?#%', 'k&x=y': 'v' },
      });
      expect(res.body.errors).toBeUndefined();
      expect(canary.requests.length).toBe(before + 1);
      const url = canary.requests.at(-1)!.url;
      expect(url.startsWith('/api/search?')).toBe(true);
      const query = url.slice(url.indexOf('?') + 1);
      // Nothing the caller gave can start a new parameter or end the query.
      expect(query).not.toContain('a&b=c');
      expect(query).not.toContain('#');
      const params = new URLSearchParams(query);
      expect([...params.keys()]).toEqual(['tag', 'tag', 'tag', 'tag', 'n', 'f', 'yes', 'no', 'q', 'odd', 'k&x=y']);
      expect(params.getAll('tag')).toEqual(['a', 'b', '3', 'false']);
      expect(params.get('n')).toBe('42');
      expect(params.get('f')).toBe('-1.5');
      expect(params.get('yes')).toBe('true');
      expect(params.get('no')).toBe('false');
      expect(params.get('q')).toBe('a&b=c');
      expect(params.has('b')).toBe(false);
      expect(params.get('odd')).toBe('x y+z/ü?#%');
      expect(params.get('k&x=y')).toBe('v');
      expect(params.has('x')).toBe(false);
    });

    it.each([
      ['a nested object', { a: { b: 1 } }],
      ['an array of objects', { a: [{ b: 1 }] }],
      ['a nested array', { a: [[1]] }],
      ['a null value', { a: null }],
      ['a query that is a string', 'a=1&b=2'],
      ['a query that is an array', [['a', '1']]],
    ] as [string, unknown][])('refuses %s with BAD_USER_INPUT and sends nothing', async (_label, query) => {
      const before = sentTotal();
      const res = await invoke('crm', { path: '/search', query });
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });
  });

  describe('bodies on safe methods', () => {
    it.each([
      ['explicit GET', { method: 'GET', path: '/notes', body: { text: 'x' } }],
      ['the default method (GET)', { path: '/notes', body: 'x' }],
      ['HEAD', { method: 'HEAD', path: '/notes', body: [1] }],
      ['GET with an empty object', { method: 'GET', path: '/notes', body: {} }],
    ] as [string, Record<string, unknown>][])('refuses a body with %s in Mutation.invoke and sends nothing', async (_label, p) => {
      const before = sentTotal();
      const res = await invokeMutation('crm', p);
      expect(codeOf(res)).toBe('BAD_USER_INPUT');
      expect(sentTotal()).toBe(before);
    });

    it('still sends a GET without a body through Mutation.invoke', async () => {
      const before = canary.requests.length;
      const res = await invokeMutation('crm', { method: 'GET', path: '/notes' });
      expect(res.body.errors).toBeUndefined();
      expect(canary.requests.length).toBe(before + 1);
      expect(canary.requests.at(-1)!).toMatchObject({ method: 'GET', url: '/api/notes', body: '' });
    });
  });

  describe('upstream failures', () => {
    beforeAll(() => {
      flaky.route('/hang', () => {
        // never answers; the upstream's close() drops the socket
      });
      flaky.route('/drip', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('DRIP-SECRET-0;');
        let n = 0;
        const timer = setInterval(() => {
          if (++n >= 30) {
            clearInterval(timer);
            res.end('DRIP-SECRET-END');
          } else res.write(`DRIP-SECRET-${n};`);
        }, 100);
        res.on('close', () => clearInterval(timer));
      });
      flaky.route('/reset-now', (_req, res) => {
        res.socket?.destroy();
      });
      flaky.route('/reset-mid', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
        res.write('RESET-SECRET-BODY-TEXT', () => setTimeout(() => res.socket?.destroy(), 20));
      });
      flaky.route('/reset-mid-chunked', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"partial":"RESET-SECRET-CHUNKED', () => setTimeout(() => res.socket?.destroy(), 20));
      });
    });

    const noLeak = (res: GqlResponse, secret: string) => {
      expect(res.body.errors?.[0]?.message).toBeTruthy();
      expect(JSON.stringify(res.body)).not.toContain(secret);
    };

    it('gives UPSTREAM_TIMEOUT when the called system never answers within timeoutMs', async () => {
      const before = flaky.requests.length;
      const started = Date.now();
      const res = await invoke('slow', { path: '/hang/1' });
      const elapsed = Date.now() - started;
      expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
      expect(flaky.requests.length).toBe(before + 1); // it was sent, and then given up on
      expect(elapsed).toBeGreaterThanOrEqual(280);
      expect(elapsed).toBeLessThan(3000);
      const [latest] = await invocationsOf(hub, 'slow');
      expect(latest).toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: null, path: '/hang/1' });
      expect(latest!.durationMs).toBeGreaterThanOrEqual(250);
    });

    it('gives UPSTREAM_TIMEOUT when the headers come in time but the body drips past the deadline', async () => {
      const started = Date.now();
      const res = await invoke('slow', { path: '/drip/1' });
      const elapsed = Date.now() - started;
      expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
      // The whole drip takes 3 s; the deadline (300 ms) covers the body too.
      expect(elapsed).toBeLessThan(2000);
      noLeak(res, 'DRIP-SECRET');
      const [latest] = await invocationsOf(hub, 'slow');
      expect(latest).toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: null, path: '/drip/1' });
    });

    it('gives UPSTREAM_TIMEOUT through Mutation.invoke as well', async () => {
      const res = await invokeMutation('slow', { method: 'POST', path: '/hang/2', body: { a: 1 } });
      expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
      const [latest] = await invocationsOf(hub, 'slow');
      expect(latest).toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: null, path: '/hang/2' });
    });

    it('gives UPSTREAM_UNREACHABLE for a port nobody listens on', async () => {
      const res = await invoke('gone', { path: '/x' });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      expect(res.body.errors![0]!.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      const [latest] = await invocationsOf(hub, 'gone');
      expect(latest).toMatchObject({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/x' });
    });

    it('gives UPSTREAM_UNREACHABLE when the called system drops the connection before answering', async () => {
      const before = flaky.requests.length;
      const res = await invoke('flaky', { path: '/reset-now' });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      expect(flaky.requests.length).toBe(before + 1);
      const [latest] = await invocationsOf(hub, 'flaky');
      expect(latest).toMatchObject({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/reset-now' });
    });

    it('gives UPSTREAM_UNREACHABLE, without the partial body, when the connection drops mid-response', async () => {
      const res = await invoke('flaky', { path: '/reset-mid' });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      noLeak(res, 'RESET-SECRET');
      const [latest] = await invocationsOf(hub, 'flaky');
      expect(latest).toMatchObject({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/reset-mid' });
    });

    it('gives UPSTREAM_UNREACHABLE when a chunked answer is cut off', async () => {
      const res = await invoke('flaky', { path: '/reset-mid-chunked' });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      noLeak(res, 'RESET-SECRET');
      const [latest] = await invocationsOf(hub, 'flaky');
      expect(latest).toMatchObject({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/reset-mid-chunked' });
    });

    it('still reaches the same deployment normally after those failures', async () => {
      const res = await invoke('flaky', { path: '/fine' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
      expect(res.body.data.invoke.data.url).toBe('/fine');
      const [latest] = await invocationsOf(hub, 'flaky');
      expect(latest).toMatchObject({ code: null, status: 200, path: '/fine' });
    });
  });

  describe('answers that are not JSON', () => {
    beforeAll(() => {
      canary.route('/api/text', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('plain words, not JSON');
      });
      canary.route('/api/untyped', (_req, res) => {
        res.writeHead(200);
        res.end('{"looks":"like json"}');
      });
      canary.route('/api/empty-json', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' });
        res.end();
      });
      canary.route('/api/no-content', (_req, res) => {
        res.writeHead(204);
        res.end();
      });
      canary.route('/api/broken-json', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
        res.end('{"broken": tru');
      });
      canary.route('/api/problem', (_req, res) => {
        res.writeHead(422, { 'content-type': 'application/problem+json' });
        res.end('{"title":"bad","status":422}');
      });
    });

    it('returns a text answer as a string', async () => {
      const res = await invoke('crm', { path: '/text' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 200, ok: true, data: 'plain words, not JSON' });
      expect(res.body.data.invoke.headers['content-type']).toBe('text/plain; charset=utf-8');
    });

    it('returns an answer without a content type as text, not parsed', async () => {
      const res = await invoke('crm', { path: '/untyped' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.data).toBe('{"looks":"like json"}');
    });

    it('gives data null for an empty body', async () => {
      const res = await invoke('crm', { path: '/empty-json' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 200, ok: true, data: null });
      const noContent = await invoke('crm', { path: '/no-content' });
      expect(noContent.body.errors).toBeUndefined();
      expect(noContent.body.data.invoke).toMatchObject({ status: 204, ok: true, data: null });
    });

    it('returns invalid JSON labelled application/json as the raw string', async () => {
      const res = await invoke('crm', { path: '/broken-json' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 200, ok: true, data: '{"broken": tru' });
      const [latest] = await invocationsOf(hub, 'crm');
      expect(latest).toMatchObject({ code: null, status: 200, path: '/broken-json' });
    });

    it('parses +json types and keeps a non-2xx answer as data', async () => {
      const res = await invoke('crm', { path: '/problem' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 422, ok: false, data: { title: 'bad', status: 422 } });
    });
  });

  describe('response size limit (HUB_MAX_RESPONSE_BYTES=1000)', () => {
    let small: TestHub;
    let big: Upstream;

    beforeAll(async () => {
      big = await startUpstream();
      big.route('/cl/5000', (_req, res) => fixed(res, 5000, 'LEAKY-BODY-'));
      big.route('/cl/1000', (_req, res) => fixed(res, 1000, 'x'));
      big.route('/cl/1001', (_req, res) => fixed(res, 1001, 'x'));
      big.route('/chunked/5000', (_req, res) => chunked(res, 5000, 'LEAKY-CHUNK-'));
      big.route('/chunked/1000', (_req, res) => chunked(res, 1000, 'y'));
      // 103 Early Hints first (whose headers say nothing of the answer's size), then the answer.
      big.route('/hints', (_req, res) => {
        res.writeEarlyHints({ link: '</style.css>; rel=preload', 'content-length': '999999' });
        fixed(res, 10, 'h');
      });
      small = await startTestHub(kind, { env: { HUB_MAX_RESPONSE_BYTES: '1000' } });
      await seedExclusive(small, { tenantId: 'acme', systemId: 'big', baseUrl: big.url });
    });
    afterAll(async () => {
      await small?.close();
      await big?.close();
    });

    it.each([
      ['with a content-length', '/cl/5000', 'LEAKY-BODY'],
      ['chunked, without a content-length', '/chunked/5000', 'LEAKY-CHUNK'],
      ['one byte over the limit', '/cl/1001', 'xxxxxxxxxxxxxxxxxxxx'],
    ])('refuses a too-large answer %s with UPSTREAM_RESPONSE_TOO_LARGE', async (_label, path, secret) => {
      const before = big.requests.length;
      const res = await small.gql(INVOKE_QUERY, { t: 'acme', s: 'big', p: { path } });
      expect(codeOf(res)).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
      expect(big.requests.length).toBe(before + 1);
      expect(JSON.stringify(res.body)).not.toContain(secret);
      const [latest] = await invocationsOf(small, 'big');
      expect(latest).toMatchObject({ code: 'UPSTREAM_RESPONSE_TOO_LARGE', status: null, path });
    });

    it.each(['/cl/1000', '/chunked/1000'])('accepts an answer of exactly the limit (%s)', async (path) => {
      const res = await small.gql(INVOKE_QUERY, { t: 'acme', s: 'big', p: { path } });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
      expect((res.body.data.invoke.data as string).length).toBe(1000);
    });

    it('reads the answer after a 103 Early Hints, not the hints, for status and size', async () => {
      const res = await small.gql(INVOKE_QUERY, { t: 'acme', s: 'big', p: { path: '/hints' } });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
      expect((res.body.data.invoke.data as string).length).toBe(10);
    });

    it('survives a too-large answer with a content-length: no uncaught exception in the hub process', async () => {
      // An uncaught exception would end a real hub process (there is no handler in src/).
      const uncaught: Error[] = [];
      const onUncaught = (e: Error) => uncaught.push(e);
      process.on('uncaughtException', onUncaught);
      try {
        const res = await small.gql(INVOKE_QUERY, { t: 'acme', s: 'big', p: { path: '/cl/5000', query: { probe: 'uncaught' } } });
        expect(codeOf(res)).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        process.off('uncaughtException', onUncaught);
      }
      expect(uncaught.map((e) => `${e.name}: ${e.message}`)).toEqual([]);
    });

    it('answers HEAD on a large resource: its content-length describes a body that is never sent', async () => {
      const res = await small.gql(INVOKE_QUERY, { t: 'acme', s: 'big', p: { method: 'HEAD', path: '/cl/5000' } });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data?.invoke).toMatchObject({ status: 200, ok: true, data: null });
      expect(big.requests.at(-1)!.method).toBe('HEAD');
    });
  });

  describe('outbound policy (HUB_OUTBOUND_DENY=127.0.0.0/8)', () => {
    let denying: TestHub;
    let victim: Upstream;

    beforeAll(async () => {
      victim = await startUpstream();
      denying = await startTestHub(kind, { env: { HUB_OUTBOUND_DENY: '127.0.0.0/8' } });
      // Registration does not resolve anything: the policy applies at connect time.
      await seedExclusive(denying, { tenantId: 'acme', systemId: 'internal', baseUrl: `${victim.url}/admin`, token: 'internal-token-secret-3' });
      await seedExclusive(hub, { tenantId: 'acme', systemId: 'internal', baseUrl: `${victim.url}/admin` });
    });
    afterAll(async () => {
      await denying?.close();
      await victim?.close();
    });

    it('refuses to connect to a denied address: UPSTREAM_UNREACHABLE, nothing received, a log line naming HUB_OUTBOUND_DENY', async () => {
      const res = await denying.gql(INVOKE_QUERY, { t: 'acme', s: 'internal', p: { path: '/users' } });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      expect(victim.requests).toHaveLength(0);
      expect(denying.logs.some((line) => line.includes('HUB_OUTBOUND_DENY'))).toBe(true);
      expect(denying.logs.some((line) => line.includes('internal-token-secret-3'))).toBe(false);
      const mut = await denying.gql(INVOKE_MUTATION, { t: 'acme', s: 'internal', p: { method: 'DELETE', path: '/users/1' } });
      expect(codeOf(mut)).toBe('UPSTREAM_UNREACHABLE');
      expect(victim.requests).toHaveLength(0);
      const records = await invocationsOf(denying, 'internal');
      expect(records.slice(0, 2)).toEqual([
        expect.objectContaining({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/users/1', method: 'DELETE' }),
        expect.objectContaining({ code: 'UPSTREAM_UNREACHABLE', status: null, path: '/users', method: 'GET' }),
      ]);
    });

    it('reaches the same upstream from a hub without that policy (the refusal is the policy, not the network)', async () => {
      const before = victim.requests.length;
      const res = await invoke('internal', { path: '/users' }, hub.adminKey);
      expect(res.body.errors).toBeUndefined();
      expect(victim.requests.length).toBe(before + 1);
      expect(victim.requests.at(-1)!.url).toBe('/admin/users');
    });
  });
});

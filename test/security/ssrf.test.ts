// Attack suite, SSRF (issue 3, part 5): a caller must never make the hub reach anything but the
// binding's base URL. Path escapes (variants not already in test/invoke-rules.test.ts), base URLs
// refused at registration, numeric and IPv4-mapped spellings of denied addresses, DNS names that
// resolve to denied addresses (rebinding), redirects and methods outside the enum. Every refused case
// asserts that a loopback canary received nothing: no request, not even a TCP connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from '../helpers/seed.js';
import { redirectTo, startCanary, type Canary } from '../helpers/security-canary.js';
import { startTestHub, type GqlResponse, type TestHub } from '../helpers/test-hub.js';

const codeOf = (res: GqlResponse) => res.body.errors?.[0]?.extensions?.code as string | undefined;
const DENY_LINE = 'HUB_OUTBOUND_DENY';

describe.each(testDatabases())('SSRF on %s', (kind) => {
  let hub: TestHub; // default outbound policy (link-local and metadata ranges denied)
  let canary: Canary; // acme's CRM: /api under it, and the root binding "root"
  let callerKey: string;

  const invoke = (systemId: string, p: Record<string, unknown>, h: TestHub = hub, key: string | null = callerKey) => h.gql(INVOKE_QUERY, { t: 'acme', s: systemId, p }, { key });
  const invokeMutation = (systemId: string, p: Record<string, unknown>, h: TestHub = hub, key: string | null = callerKey) =>
    h.gql(INVOKE_MUTATION, { t: 'acme', s: systemId, p }, { key });

  beforeAll(async () => {
    canary = await startCanary();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/api`, token: 'ssrf-crm-token' });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'root', baseUrl: canary.url });
    callerKey = await createCallerWithGrant(hub, { id: 'ssrf-caller', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await canary?.close();
  });

  // -----------------------------------------------------------------------------------------------
  describe('path escapes: BAD_USER_INPUT, nothing sent', () => {
    const escapes: [string, string][] = [
      // absolute and protocol-relative URLs
      ['an absolute https URL', 'https://evil.example/x'],
      ['an upper-case scheme', 'HTTP://EVIL.EXAMPLE/x'],
      ['a scheme with one slash', 'http:/evil.example/x'],
      ['a file URL', 'file:///etc/passwd'],
      ['a leading space before "//"', ' //evil.example/x'],
      ['a leading tab before an absolute URL', '\thttp://evil.example/'],
      ['"//" after the first segment', '/x//evil.example'],
      ['an absolute URL after the slash', '/http://evil.example/x'],
      ['"/%2F%2F" (upper-case encoded slashes)', '/%2F%2Fevil.example/x'],
      ['"/%252f%252f" (double-encoded slashes)', '/%252f%252fevil.example/x'],
      ['an encoded scheme after the slash, double-encoded', '/http%253a%252f%252fevil.example'],
      // backslashes
      ['a backslash after the slash', '/\\evil.example/x'],
      ['"/%5C%5C" (encoded backslashes, UNC style)', '/%5C%5Cevil.example/x'],
      ['"%255c" (a double-encoded backslash)', '/a%255c..%255cb'],
      ['a backslash-dot-dot', '/a/..\\b'],
      // dot segments in every encoding
      ['mixed-case "%2E."', '/a/%2E./b'],
      ['mixed-case ".%2E"', '/a/.%2E/b'],
      ['"%2E%2e"', '/a/%2E%2e/admin'],
      ['double-encoded "%252E%252E"', '/a/%252E%252E/admin'],
      ['triple-encoded "%25252e%25252e"', '/a/%25252e%25252e/admin'],
      ['quadruple-encoded "%2525252e"', '/a/%2525252e%2525252e/admin'],
      ['"..%2f" climbing', '/..%2f..%2fadmin'],
      ['"..%252f" climbing, double-encoded slash', '/a/..%252f..%252fadmin'],
      ['"%2e%2e%5c" (dots and an encoded backslash)', '/%2e%2e%5cadmin'],
      ['".." with a ";param" (Tomcat)', '/a/..;/admin'],
      ['encoded ".." with a ";param"', '/a/%2e%2e;x=1/admin'],
      ['a trailing encoded "."', '/a/%2e'],
      ['overlong UTF-8 dots "%c0%ae%c0%ae"', '/%c0%ae%c0%ae/admin'],
      ['overlong UTF-8 slash "%c0%af"', '/..%c0%afadmin'],
      ['3-byte overlong dots "%e0%80%ae"', '/%e0%80%ae%e0%80%ae/admin'],
      ['IIS "%u002e%u002e"', '/%u002e%u002e/admin'],
      ['unicode fullwidth dots (raw)', '/\uff0e\uff0e/admin'],
      ['unicode one-dot leaders (raw)', '/\u2024\u2024/admin'],
      ['unicode fullwidth dots, percent-encoded (NFKC ".." on normalising servers)', '/%EF%BC%8E%EF%BC%8E/admin'],
      ['unicode one-dot leaders, percent-encoded (NFKC "..")', '/%E2%80%A4%E2%80%A4/admin'],
      // CR, LF, NUL, tabs
      ['an encoded CRLF request splitting', '/a%0d%0aHost:%20evil.example'],
      ['a double-encoded CRLF', '/a%250d%250aX-Injected:%201'],
      ['an encoded NUL after ".."', '/..%00/admin'],
      ['a double-encoded NUL', '/a%2500.json'],
      ['an encoded tab after ".."', '/..%09/admin'],
      ['a raw tab inside ".."', '/.\t./admin'],
      ['a raw CRLF', '/a\r\nX-Injected: 1'],
      ['a raw vertical tab', '/a\u000bb'],
      // fragments and queries
      ['a fragment hiding ".."', '/x#/../../admin'],
      ['a fragment with userinfo', '/#@evil.example/'],
      ['a query with an absolute URL', '/x?next=http://evil.example/'],
      // userinfo-looking paths on a root binding: only harmless when never parsed as authority
      ['an "@" right after "//"', '//user@evil.example/x'],
    ];

    it.each(escapes)('refuses %s', async (_label, path) => {
      const hits = canary.hits();
      for (const systemId of ['crm', 'root']) {
        const res = await invoke(systemId, { path });
        expect(codeOf(res), JSON.stringify(res.body)).toBe('BAD_USER_INPUT');
        expect(res.body.data?.invoke ?? null).toBeNull();
        const mut = await invokeMutation(systemId, { method: 'PUT', path, body: { x: 1 } });
        expect(codeOf(mut), JSON.stringify(mut.body)).toBe('BAD_USER_INPUT');
      }
      expect(canary.hits(), 'the canary was reached').toBe(hits);
    });

    it.each([
      ['three dots (a name, not a dot segment)', '/.../x', '/api/.../x'],
      ['a dot inside a name', '/a.b/..c/d..', '/api/a.b/..c/d..'],
      ['an encoded percent that is not an escape', '/a%2520b', '/api/a%2520b'],
      ['an encoded "#" as data', '/tags/%23urgent', '/api/tags/%23urgent'],
      ['an "@" inside a segment', '/users/@me', '/api/users/@me'],
    ])('lets %s through to the base path (control)', async (_label, path, expected) => {
      const before = canary.requests.length;
      const res = await invoke('crm', { path });
      expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
      expect(canary.requests.length).toBe(before + 1);
      expect(canary.requests.at(-1)!.url).toBe(expected);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('base URLs are checked at registration', () => {
    const refused = (port: number): [string, string][] => [
      ['user and password', `http://user:pass@127.0.0.1:${port}/api`],
      ['a user only', `http://admin@127.0.0.1:${port}/`],
      ['an empty userinfo', `http://@127.0.0.1:${port}/`],
      ['userinfo that names another host', `http://127.0.0.1:${port}@evil.example/`],
      ['an encoded "@" in userinfo', `http://a%40b@127.0.0.1:${port}/`],
      ['a query', `http://127.0.0.1:${port}/api?x=1`],
      ['an empty query', `http://127.0.0.1:${port}/api?`],
      ['a fragment', `http://127.0.0.1:${port}/api#frag`],
      ['an empty fragment', `http://127.0.0.1:${port}/#`],
      ['ftp', `ftp://127.0.0.1:${port}/`],
      ['file', 'file:///etc/passwd'],
      ['gopher (the classic SSRF to Redis)', `gopher://127.0.0.1:${port}/_FLUSHALL`],
      ['ws', `ws://127.0.0.1:${port}/`],
      ['javascript', 'javascript:alert(1)'],
      ['data', 'data:text/plain,hello'],
      ['a relative URL', '/api'],
      ['a scheme-relative URL', `//127.0.0.1:${port}/api`],
      ['a backslash authority', `http:\\\\127.0.0.1:${port}\\api`],
      ['a CRLF', `http://127.0.0.1:${port}/a\r\nb`],
    ];

    it('refuses user info, queries, fragments and non-http schemes in bindSystem and sharedBaseUrl', async () => {
      const hits = canary.hits();
      for (const [label, baseUrl] of refused(canary.port)) {
        const bind = await hub.gql(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
          i: { tenantId: 'acme', systemId: 'crm', baseUrl, credential: { kind: 'BEARER', token: 'ssrf-crm-token' } },
        });
        expect(codeOf(bind), `bindSystem ${label}: ${JSON.stringify(bind.body)}`).toBe('BAD_USER_INPUT');
        const shared = await hub.gql(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, {
          i: { id: 'shared-bad', name: 'bad', mode: 'SHARED', sharedBaseUrl: baseUrl },
        });
        expect(codeOf(shared), `createSystem ${label}: ${JSON.stringify(shared.body)}`).toBe('BAD_USER_INPUT');
      }
      // Nothing changed: crm still points at /api and the shared system does not exist.
      const data = await hub.admin(`{ binding(tenantId: "acme", systemId: "crm") { baseUrl } system(id: "shared-bad") { id } }`);
      expect(data.binding.baseUrl).toBe(`${canary.url}/api`);
      expect(data.system).toBeNull();
      expect(canary.hits()).toBe(hits);
    });

    it('refuses the same base URLs in updateSystem', async () => {
      await hub.admin(`mutation { createSystem(input: { id: "saas", name: "SaaS", mode: SHARED, sharedBaseUrl: "${canary.url}/saas" }) { id } }`);
      for (const [label, baseUrl] of refused(canary.port)) {
        const res = await hub.gql(`mutation($u: String) { updateSystem(id: "saas", input: { sharedBaseUrl: $u }) { sharedBaseUrl } }`, { u: baseUrl });
        expect(codeOf(res), `${label}: ${JSON.stringify(res.body)}`).toBe('BAD_USER_INPUT');
      }
      expect((await hub.admin(`{ system(id: "saas") { sharedBaseUrl } }`)).system.sharedBaseUrl).toBe(`${canary.url}/saas`);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('the cloud metadata address in every spelling (default HUB_OUTBOUND_DENY)', () => {
    it.each([
      ['dotted', 'http://169.254.169.254/latest/meta-data'],
      ['decimal', 'http://2852039166/latest/meta-data'],
      ['octal', 'http://0251.0376.0251.0376/latest/meta-data'],
      ['hex', 'http://0xa9fea9fe/latest/meta-data'],
      ['dotted hex', 'http://0xa9.0xfe.0xa9.0xfe/'],
      ['short form a.b.c', 'http://169.254.43518/'],
      ['short form a.b', 'http://169.16689662/'],
      ['IPv4-mapped IPv6', 'http://[::ffff:169.254.169.254]/latest/meta-data'],
      ['IPv4-mapped IPv6 in hex', 'http://[::ffff:a9fe:a9fe]/'],
      ['IPv4-mapped IPv6, long form', 'http://[0:0:0:0:0:ffff:169.254.169.254]/'],
      ['a trailing dot', 'http://169.254.169.254./'],
      ['the AWS IPv6 metadata address', 'http://[fd00:ec2::254]/latest/meta-data'],
      ['an IPv6 link-local address', 'http://[fe80::1]/'],
    ])('is refused at registration or at connect time: %s', async (label, baseUrl) => {
      const id = `meta-${label.replace(/[^a-z0-9]+/gi, '-')}`.slice(0, 60);
      await hub.admin(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: { id, name: id, mode: 'EXCLUSIVE', timeoutMs: 2000 } });
      const bind = await hub.gql(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, { i: { tenantId: 'acme', systemId: id, baseUrl } });
      if (bind.body.errors) {
        expect(codeOf(bind)).toBe('BAD_USER_INPUT');
        return;
      }
      const lines = hub.logs.filter((l) => l.includes(DENY_LINE)).length;
      const res = await invoke(id, { path: '/latest/meta-data/iam/security-credentials/' });
      expect(codeOf(res), JSON.stringify(res.body)).toBe('UPSTREAM_UNREACHABLE');
      expect(hub.logs.filter((l) => l.includes(DENY_LINE)).length, 'no log line names HUB_OUTBOUND_DENY').toBeGreaterThan(lines);
      const mut = await invokeMutation(id, { method: 'PUT', path: '/latest/api/token' });
      expect(codeOf(mut)).toBe('UPSTREAM_UNREACHABLE');
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('loopback in every spelling (HUB_OUTBOUND_DENY=127.0.0.0/8,::1/128)', () => {
    let denying: TestHub;
    let inner: Canary; // an internal service on 127.0.0.1 that no tenant may reach
    let innerKey: string;
    // PORT is replaced by the loopback canary's port.
    const spellings: [string, string][] = [
      ['dotted', 'http://127.0.0.1:PORT/admin'],
      ['decimal', 'http://2130706433:PORT/admin'],
      ['octal', 'http://0177.0.0.1:PORT/admin'],
      ['octal, one number', 'http://017700000001:PORT/admin'],
      ['hex', 'http://0x7f000001:PORT/admin'],
      ['dotted hex', 'http://0x7f.0x0.0x0.0x1:PORT/admin'],
      ['short form 127.1', 'http://127.1:PORT/admin'],
      ['short form 0x7f.1', 'http://0x7f.1:PORT/admin'],
      ['another loopback address', 'http://127.42.42.42:PORT/admin'],
      ['a trailing dot', 'http://127.0.0.1.:PORT/admin'],
      ['IPv4-mapped IPv6', 'http://[::ffff:127.0.0.1]:PORT/admin'],
      ['IPv4-mapped IPv6 in hex', 'http://[::ffff:7f00:1]:PORT/admin'],
      ['IPv6 loopback', 'http://[::1]:PORT/admin'],
      ['a host name that resolves to loopback', 'http://localhost:PORT/admin'],
      ['the unspecified address 0.0.0.0 (Linux connects it to loopback)', 'http://0.0.0.0:PORT/admin'],
      ['the unspecified address spelt "0"', 'http://0:PORT/admin'],
    ];
    const at = (template: string) => template.replace('PORT', String(inner.port));

    beforeAll(async () => {
      inner = await startCanary();
      denying = await startTestHub(kind, { env: { HUB_OUTBOUND_DENY: '127.0.0.0/8,::1/128,169.254.0.0/16' } });
      await denying.admin(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`);
      innerKey = await createCallerWithGrant(denying, { id: 'loop-caller', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
    });
    afterAll(async () => {
      await denying?.close();
      await inner?.close();
    });

    it.each(spellings)('never reaches the loopback canary through %s', async (label, template) => {
      const baseUrl = at(template);
      const id = `loop-${spellings.findIndex(([l]) => l === label)}`;
      await denying.admin(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: { id, name: label, mode: 'EXCLUSIVE', timeoutMs: 2000 } });
      const hits = inner.hits();
      const bind = await denying.gql(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
        i: { tenantId: 'acme', systemId: id, baseUrl, credential: { kind: 'BEARER', token: `loop-token-${id}` } },
      });
      if (bind.body.errors) {
        expect(codeOf(bind), label).toBe('BAD_USER_INPUT');
      } else {
        const lines = denying.logs.filter((l) => l.includes(DENY_LINE)).length;
        const res = await invoke(id, { path: '/users' }, denying, innerKey);
        const mut = await invokeMutation(id, { method: 'DELETE', path: '/users/1' }, denying, innerKey);
        expect(inner.hits(), `${label} (${baseUrl}) reached the loopback canary`).toBe(hits);
        expect(codeOf(res), `${label}: ${JSON.stringify(res.body)}`).toBe('UPSTREAM_UNREACHABLE');
        expect(codeOf(mut), label).toBe('UPSTREAM_UNREACHABLE');
        expect(denying.logs.filter((l) => l.includes(DENY_LINE)).length, `${label}: no log line names HUB_OUTBOUND_DENY`).toBeGreaterThan(lines);
      }
      expect(inner.hits(), `${label} (${baseUrl}) reached the loopback canary`).toBe(hits);
    });

    it('refuses a registered name that resolves to a denied address at connect time (DNS rebinding), with a log line', async () => {
      // Registration does not resolve names: "localhost" is accepted like any other host ...
      await denying.admin(`mutation { createSystem(input: { id: "rebind", name: "Rebind", mode: EXCLUSIVE, timeoutMs: 2000 }) { id } }`);
      const bound = await denying.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "rebind", baseUrl: "http://localhost:${inner.port}/internal" }) { baseUrl } }`);
      expect(bound.bindSystem.baseUrl).toBe(`http://localhost:${inner.port}/internal`);
      // ... and every call is checked against the addresses the name resolves to now.
      const hits = inner.hits();
      const from = denying.logs.length;
      for (let round = 0; round < 3; round++) {
        const res = await invoke('rebind', { path: `/round/${round}` }, denying, innerKey);
        expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      }
      expect(inner.hits()).toBe(hits);
      const lines = denying.logs.slice(from).filter((l) => l.includes(DENY_LINE)).map((l) => JSON.parse(l));
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines[0]).toMatchObject({ host: 'localhost' });
      expect(['warn', 'error']).toContain(lines[0].level);
      // The refusal is recorded as such.
      const records = await denying.admin(`{ invocations(first: 3, systemId: "rebind") { edges { node { code status } } } }`);
      expect(records.invocations.edges.map((e: { node: unknown }) => e.node)).toEqual(Array(3).fill({ code: 'UPSTREAM_UNREACHABLE', status: null }));
    });

    it('refuses the unspecified address even without a policy: it is no destination', async () => {
      const baseUrl = at('http://0.0.0.0:PORT/admin');
      await seedExclusive(hub, { tenantId: 'acme', systemId: 'unspecified', baseUrl });
      const before = inner.requests.length;
      const res = await invoke('unspecified', { path: '/users' });
      expect(res.body.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNREACHABLE');
      expect(inner.requests.length).toBe(before);
    });

    it('reaches the same canary through the same spellings from a hub without that policy (control)', async () => {
      // (The unspecified address is refused by every hub, policy or not: see the test below.)
      for (const [label, template] of spellings.filter(([l]) => ['decimal', 'hex', 'short form 127.1'].includes(l))) {
        const baseUrl = at(template);
        const id = `ctl-${label.replace(/[^a-z0-9]+/gi, '-')}`.slice(0, 60);
        await seedExclusive(hub, { tenantId: 'acme', systemId: id, baseUrl });
        const before = inner.requests.length;
        const res = await invoke(id, { path: '/users' });
        expect(res.body.errors, `${label}: ${JSON.stringify(res.body.errors)}`).toBeUndefined();
        expect(inner.requests.length, label).toBe(before + 1);
        expect(inner.requests.at(-1)!.url).toBe('/admin/users');
      }
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('redirects are returned, never followed', () => {
    let elsewhere: Canary;
    beforeAll(async () => {
      elsewhere = await startCanary();
      for (const status of [301, 302, 303, 307, 308]) {
        canary.route(`/api/redirect/${status}`, redirectTo(status, `${elsewhere.url}/stolen?status=${status}`));
      }
      canary.route('/api/redirect/metadata', redirectTo(302, 'http://169.254.169.254/latest/meta-data/'));
      canary.route('/api/redirect/relative', redirectTo(302, '/api/relative-target'));
    });
    afterAll(async () => {
      await elsewhere?.close();
    });

    it.each([301, 302, 303, 307, 308])('returns a %i to another host as data; that host is never contacted', async (status) => {
      const res = await invoke('crm', { path: `/redirect/${status}` });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status, ok: false });
      expect(res.body.data.invoke.headers.location).toBe(`${elsewhere.url}/stolen?status=${status}`);
      // A POST (307/308 would re-send the body and the credential) is not followed either.
      const mut = await invokeMutation('crm', { method: 'POST', path: `/redirect/${status}`, body: { secret: 'payload' } });
      expect(mut.body.data.invoke.status).toBe(status);
      expect(elsewhere.hits()).toBe(0);
    });

    it('does not follow a redirect to the metadata address or back into the same deployment', async () => {
      const from = hub.logs.length;
      const meta = await invoke('crm', { path: '/redirect/metadata' });
      expect(meta.body.data.invoke).toMatchObject({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
      // Not even attempted: the outbound policy was never consulted for that address.
      expect(hub.logs.slice(from).some((l) => l.includes(DENY_LINE))).toBe(false);
      const before = canary.requests.length;
      const rel = await invoke('crm', { path: '/redirect/relative' });
      expect(rel.body.data.invoke.status).toBe(302);
      expect(canary.requests.length).toBe(before + 1);
      expect(canary.requests.some((r) => r.url === '/api/relative-target')).toBe(false);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('methods come only from the enum', () => {
    it.each(['TRACE', 'CONNECT', 'OPTIONS', 'PROPFIND', 'trace', 'get'])('refuses method %s in the document as a validation error, nothing sent', async (method) => {
      const hits = canary.hits();
      for (const op of ['query', 'mutation']) {
        const res = await hub.gql(`${op} { invoke(tenantId: "acme", systemId: "crm", params: { method: ${method}, path: "/x" }) { status } }`, undefined, { key: callerKey });
        expect(res.status).toBe(400);
        expect(codeOf(res)).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(res.body.data ?? null).toBeNull();
        // As a string literal it is no enum value either.
        const str = await hub.gql(`${op} { invoke(tenantId: "acme", systemId: "crm", params: { method: "${method}", path: "/x" }) { status } }`, undefined, { key: callerKey });
        expect(str.status).toBe(400);
        expect(codeOf(str)).toBe('GRAPHQL_VALIDATION_FAILED');
      }
      expect(canary.hits()).toBe(hits);
    });

    it.each(['TRACE', 'CONNECT', 'GET\r\nX-Injected: 1', 'DELETE '])('refuses method %j passed in variables, nothing sent', async (method) => {
      const hits = canary.hits();
      const res = await invokeMutation('crm', { method, path: '/x' });
      expect(res.body.errors?.length).toBeGreaterThan(0);
      expect(res.body.data?.invoke ?? null).toBeNull();
      expect(canary.hits()).toBe(hits);
    });

    it('answers a method outside the enum in variables as a request error (400), not INTERNAL_SERVER_ERROR', async () => {
      const res = await invokeMutation('crm', { method: 'TRACE', path: '/x' });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(codeOf(res), JSON.stringify(res.body)).not.toBe('INTERNAL_SERVER_ERROR');
    });
  });
});

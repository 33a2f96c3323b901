// OAuth2 client credentials: a real token endpoint on loopback that counts its calls and can be told
// to fail, and a real called system that accepts only the tokens that endpoint issued (401 for any
// other, expired or revoked one). Hubs restart on the same database to show what is stored.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerResponse } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_CLASS, lockKey } from '../src/invoke/oauth2-tokens.js';
import { testDatabases } from './helpers/databases.js';
import { startHubProcess } from './helpers/hub-process.js';
import { createTestDatabase, lockWaiters, repeatableReadByDefault, type TestDatabase } from './helpers/test-database.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type RecordedRequest, type Upstream } from './helpers/upstream.js';

const INVOKE = `query($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) { status ok data } }`;
const CREDENTIAL = `query($s: ID!) { binding(tenantId: "acme", systemId: $s) { credential { kind expiresAt tokenState refreshedAt failures cooldownUntil lastError } } }`;
const BIND = `mutation($i: BindSystemInput!) { bindSystem(input: $i) { credential { kind tokenState } } }`;
const SET = `mutation($s: ID!, $c: CredentialInput!) { setCredential(tenantId: "acme", systemId: $s, credential: $c) { credential { kind updatedAt } } }`;

/** How the token endpoint of one system answers. */
interface Script {
  mode: 'ok' | 'fail' | 'unauthorized' | 'hang' | 'not-json' | 'no-token' | 'mac' | 'crlf' | 'bad-expiry';
  /** expires_in of the next answers; the first answer may differ */
  expiresIn?: number;
  firstExpiresIn?: number;
  delayMs?: number;
  /** the answer waits for this */
  until?: Promise<unknown>;
}

const CLIENT_SECRET = `cs-${randomBytes(12).toString('hex')}`;
const IDP_DETAIL = 'idp-internal-detail-7f3a';

describe.each(testDatabases())('OAuth2 client credentials on %s', (kind) => {
  let idp: Upstream;
  let api: Upstream;
  let db: TestDatabase;
  let dataDir: string;
  let hub: TestHub;
  const encryptionKey = randomBytes(32).toString('base64');
  const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
  const env: Record<string, string> = { HUB_ENCRYPTION_KEY: encryptionKey, HUB_ADMIN_KEY: adminKey, HUB_OAUTH_COOLDOWN_MS: '30000' };
  const scripts = new Map<string, Script>();
  /** every access token issued: its expiry (epoch ms) */
  const issued = new Map<string, number>();
  const revoked = new Set<string>();
  const secrets = new Set<string>([CLIENT_SECRET]);
  const responses: string[] = [];
  const logs: string[] = [];

  const tokenCalls = (systemId: string) => idp.requests.filter((r) => r.url === `/token/${systemId}`);
  const apiCalls = (systemId: string) => api.requests.filter((r) => r.url.startsWith(`/${systemId}/`));
  const bearerOf = (r: RecordedRequest) => String(r.headers.authorization ?? '').replace(/^Bearer /, '');

  async function gql(query: string, variables?: Record<string, unknown>, on = hub): Promise<GqlResponse> {
    const res = await on.gql(query, variables);
    responses.push(JSON.stringify(res.body));
    return res;
  }
  async function ok(query: string, variables?: Record<string, unknown>) {
    const res = await gql(query, variables);
    expect(res.body.errors).toBeUndefined();
    return res.body.data;
  }
  const invoke = (systemId: string, p: Record<string, unknown> = { path: '/items' }, on = hub) =>
    gql(INVOKE, { t: 'acme', s: systemId, p: { ...p, path: `/${systemId}${String(p.path)}` } }, on);
  const credentialOf = async (systemId: string) => (await ok(CREDENTIAL, { s: systemId })).binding.credential;
  /** Until the token has expired both for its endpoint and for the hub, which counts from when the answer reached it. */
  async function sleepPastExpiry(systemId: string, token: string) {
    const hubExpiry = Date.parse((await credentialOf(systemId)).expiresAt as string);
    await sleep(Math.max(0, Math.max(issued.get(token)!, hubExpiry) - Date.now()) + 50);
  }

  async function bindOAuth2(systemId: string, o: { script?: Script; clientId?: string; clientSecret?: string; scope?: string; timeoutMs?: number; batchPath?: string } = {}) {
    scripts.set(systemId, o.script ?? { mode: 'ok' });
    const system = { id: systemId, name: systemId, mode: 'EXCLUSIVE', timeoutMs: o.timeoutMs ?? 5000, batchPath: o.batchPath };
    await ok(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: system });
    await ok(BIND, { i: { tenantId: 'acme', systemId, baseUrl: api.url, credential: oauth2Credential(systemId, o) } });
  }
  const oauth2Credential = (systemId: string, o: { clientId?: string; clientSecret?: string; scope?: string } = {}) => ({
    kind: 'OAUTH2_CLIENT_CREDENTIALS',
    tokenUrl: `${idp.url}/token/${systemId}`,
    clientId: o.clientId ?? `client-${systemId}`,
    clientSecret: o.clientSecret ?? CLIENT_SECRET,
    ...(o.scope ? { scope: o.scope } : {}),
  });

  async function restart(changes: Record<string, string> = {}) {
    logs.push(...hub.logs);
    await hub.close();
    Object.assign(env, changes);
    hub = await startTestHub(kind, { db, dataDir, env });
  }

  function tokenEndpoint(req: RecordedRequest, res: ServerResponse) {
    const script = scripts.get(req.url.slice('/token/'.length)) ?? { mode: 'fail' };
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const answer = () => {
      switch (script.mode) {
        case 'fail':
          return json(500, { error: 'server_error', error_description: IDP_DETAIL });
        case 'unauthorized':
          return json(401, { error: 'invalid_client', error_description: IDP_DETAIL });
        case 'hang':
          return; // never answers
        case 'not-json':
          return json(200, `<html>${IDP_DETAIL}</html>`);
        case 'no-token':
          return json(200, { token_type: 'Bearer', expires_in: 3600, detail: IDP_DETAIL });
        case 'mac':
          return json(200, { access_token: `at-mac-${IDP_DETAIL}`, token_type: 'mac', expires_in: 3600 });
        case 'crlf':
          return json(200, { access_token: `at-x\r\nX-Injected: ${IDP_DETAIL}`, token_type: 'Bearer', expires_in: 3600 });
        case 'bad-expiry':
          return json(200, { access_token: `at-${randomBytes(8).toString('hex')}`, token_type: 'Bearer', expires_in: -5 });
        case 'ok': {
          const first = !issuedFor.has(req.url);
          issuedFor.add(req.url);
          const expiresIn = first && script.firstExpiresIn !== undefined ? script.firstExpiresIn : (script.expiresIn ?? 3600);
          const token = `at-${randomBytes(16).toString('hex')}`;
          issued.set(token, Date.now() + expiresIn * 1000);
          secrets.add(token);
          return json(200, { access_token: token, token_type: 'bearer', expires_in: expiresIn });
        }
      }
    };
    if (script.until) void script.until.then(answer);
    else if (script.delayMs) setTimeout(answer, script.delayMs);
    else answer();
  }
  const issuedFor = new Set<string>();

  /** The called system: only unexpired, unrevoked tokens of the endpoint; /<system>/deny always refuses. */
  function calledSystem(req: RecordedRequest, res: ServerResponse) {
    const token = bearerOf(req);
    const expiry = issued.get(token);
    if (req.url.includes('/deny') || expiry === undefined || expiry <= Date.now() || revoked.has(token)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, headers: req.headers }));
  }

  beforeAll(async () => {
    idp = await startUpstream();
    idp.route('/token/', tokenEndpoint);
    api = await startUpstream();
    api.route('/', calledSystem);
    db = await createTestDatabase(kind);
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-oauth2-'));
    hub = await startTestHub(kind, { db, dataDir, env });
    await ok(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`);
  });
  afterAll(async () => {
    await hub?.close();
    await db?.drop();
    await idp?.close();
    await api?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('obtains one token with client_secret_basic, sends it as a bearer token, and reuses it while it is fresh', async () => {
    await bindOAuth2('s-basic', { clientId: 'hub client:1', scope: 'read write' });
    expect(await credentialOf('s-basic')).toMatchObject({ kind: 'OAUTH2_CLIENT_CREDENTIALS', tokenState: 'NOT_OBTAINED', expiresAt: null, failures: 0 });

    const first = await invoke('s-basic');
    expect(first.body.data.invoke).toMatchObject({ status: 200, ok: true });
    const [tokenRequest, ...more] = tokenCalls('s-basic');
    expect(more).toHaveLength(0);
    expect(tokenRequest!.method).toBe('POST');
    expect(tokenRequest!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(tokenRequest!.body))).toEqual({ grant_type: 'client_credentials', scope: 'read write' });
    // RFC 6749 2.3.1: id and secret form-encoded, then Basic.
    const basic = Buffer.from(String(tokenRequest!.headers.authorization).replace(/^Basic /, ''), 'base64').toString();
    expect(basic).toBe(`hub+client%3A1:${CLIENT_SECRET}`);
    const token = bearerOf(apiCalls('s-basic')[0]!);
    expect(issued.has(token)).toBe(true);
    // The called system echoes the header: the hub scrubs the token from the answer.
    expect(first.body.data.invoke.data.headers.authorization).toBe('Bearer [redacted]');

    for (let i = 0; i < 3; i++) expect((await invoke('s-basic', { path: `/again-${i}` })).body.data.invoke.status).toBe(200);
    expect(tokenCalls('s-basic')).toHaveLength(1);
    expect(apiCalls('s-basic').map(bearerOf)).toEqual([token, token, token, token]);

    const info = await credentialOf('s-basic');
    expect(info).toMatchObject({ tokenState: 'VALID', failures: 0, cooldownUntil: null, lastError: null });
    expect(Date.parse(info.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    expect(Date.parse(info.refreshedAt)).toBeLessThanOrEqual(Date.now());
    // The caller cannot send its own Authorization to an OAuth2 binding.
    const forged = await invoke('s-basic', { path: '/x', headers: { Authorization: 'Bearer forged' } });
    expect(forged.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('sends a batch with the token too', async () => {
    await bindOAuth2('s-batch', { batchPath: '/s-batch/$batch' });
    api.route('/s-batch/$batch', (req, res) => {
      const status = issued.has(bearerOf(req)) ? 200 : 401;
      const { requests } = JSON.parse(req.body) as { requests: { id: string; url: string }[] };
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ responses: requests.map((r) => ({ id: r.id, status: 200, body: { url: r.url } })) }));
    });
    const res = await gql(`{ a: invoke(tenantId: "acme", systemId: "s-batch", params: { path: "/one" }) { status }
                             b: invoke(tenantId: "acme", systemId: "s-batch", params: { path: "/two" }) { status } }`);
    expect(res.body.data).toEqual({ a: { status: 200 }, b: { status: 200 } });
    expect(apiCalls('s-batch')).toHaveLength(1);
    expect(issued.has(bearerOf(apiCalls('s-batch')[0]!))).toBe(true);
    expect(tokenCalls('s-batch')).toHaveLength(1);
  });

  it('100 concurrent invokes with an expired token make exactly one token request', async () => {
    await bindOAuth2('s-burst', { script: { mode: 'ok', firstExpiresIn: 1, expiresIn: 3600, delayMs: 200 } });
    expect((await invoke('s-burst')).body.data.invoke.status).toBe(200);
    const expired = bearerOf(apiCalls('s-burst')[0]!);
    await sleepPastExpiry('s-burst', expired);

    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => invoke('s-burst', { path: `/burst-${i}` })));
    expect(results.map((r) => r.body.data?.invoke?.status)).toEqual(Array(100).fill(200));
    expect(tokenCalls('s-burst')).toHaveLength(2);
    const sent = new Set(apiCalls('s-burst').slice(1).map(bearerOf));
    expect(sent.size).toBe(1);
    expect(sent.has(expired)).toBe(false);
  });

  it('refreshes ahead of expiry, and a restarted hub reuses the stored token', async () => {
    await bindOAuth2('s-ahead');
    await invoke('s-ahead');
    const t1 = bearerOf(apiCalls('s-ahead')[0]!);
    await restart();
    expect((await invoke('s-ahead')).body.data.invoke.status).toBe(200);
    expect(tokenCalls('s-ahead')).toHaveLength(1);
    expect(bearerOf(apiCalls('s-ahead')[1]!)).toBe(t1);

    // 30 s left of an hour-long token: inside the 60 s refresh skew, though still valid.
    await db.query(`UPDATE "OAuthToken" SET "expiresAt" = now() + interval '30 seconds', "refreshedAt" = now() - interval '3570 seconds' WHERE "systemId" = 's-ahead'`);
    await restart();
    expect((await invoke('s-ahead')).body.data.invoke.status).toBe(200);
    expect(tokenCalls('s-ahead')).toHaveLength(2);
    const t2 = bearerOf(apiCalls('s-ahead')[2]!);
    expect(t2).not.toBe(t1);
    expect(issued.get(t1)! > Date.now()).toBe(true); // the old one had not expired yet
  });

  it('renews a token that is due but still valid in the background: the call does not wait for a slow endpoint', async () => {
    // A 4 s token is due after 2 s (half its lifetime); the endpoint takes 3 s to answer.
    await bindOAuth2('s-background', { script: { mode: 'ok', firstExpiresIn: 4, expiresIn: 3600, delayMs: 3000 } });
    await invoke('s-background');
    const t1 = bearerOf(apiCalls('s-background')[0]!);
    await sleep(2_200);
    const started = Date.now();
    const due = await invoke('s-background');
    expect(due.body.data.invoke.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000); // did not wait for the 3 s token request
    expect(bearerOf(apiCalls('s-background')[1]!)).toBe(t1);
    await sleep(3_300);
    await invoke('s-background');
    expect(tokenCalls('s-background')).toHaveLength(2);
    expect(bearerOf(apiCalls('s-background')[2]!)).not.toBe(t1);
  });

  it('a 401 after the token was revoked: one refresh and one retry, shared by concurrent calls', async () => {
    await bindOAuth2('s-revoked');
    await invoke('s-revoked');
    const t1 = bearerOf(apiCalls('s-revoked')[0]!);
    revoked.add(t1); // the called system no longer takes it, though its expiry is an hour away

    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => invoke('s-revoked', { path: `/r-${i}` })));
    expect(results.map((r) => r.body.data?.invoke?.status)).toEqual(Array(20).fill(200));
    expect(tokenCalls('s-revoked')).toHaveLength(2);
    const after = apiCalls('s-revoked').slice(1);
    const t2 = bearerOf(after.at(-1)!);
    expect(t2).not.toBe(t1);
    expect(after.filter((r) => bearerOf(r) === t2)).toHaveLength(20); // each call succeeded once with the new token
    expect(after.every((r) => [t1, t2].includes(bearerOf(r)))).toBe(true);
  });

  it('a persistent 401 is answered as it is, after exactly one refresh and one retry (never a loop)', async () => {
    await bindOAuth2('s-deny');
    const first = await invoke('s-deny', { path: '/deny' });
    expect(first.body.data.invoke).toMatchObject({ status: 401, ok: false, data: { error: 'invalid_token' } });
    expect(tokenCalls('s-deny')).toHaveLength(2); // the first token, and one refresh
    expect(apiCalls('s-deny')).toHaveLength(2);
    const [a, b] = apiCalls('s-deny').map(bearerOf);
    expect(a).not.toBe(b);

    // Within the pause after a 401 renewal, another 401 renews nothing: the answer stands, the
    // endpoint is not asked again (a system that rejects good tokens cannot flood it).
    const second = await invoke('s-deny', { path: '/deny' });
    expect(second.body.data.invoke.status).toBe(401);
    expect(tokenCalls('s-deny')).toHaveLength(2);
    expect(apiCalls('s-deny')).toHaveLength(3);
    await sleep(5_100);
    const third = await invoke('s-deny', { path: '/deny' });
    expect(third.body.data.invoke.status).toBe(401);
    expect(tokenCalls('s-deny')).toHaveLength(3);
    expect(apiCalls('s-deny')).toHaveLength(5);
  });

  it('a failing token endpoint: UPSTREAM_AUTH_FAILED, a cooldown honoured across restarts, a visible state; then recovery', async () => {
    await bindOAuth2('s-fail', { script: { mode: 'fail' } });
    const metricsBefore = await (await fetch(`${hub.url}/metrics`)).text();
    const first = await invoke('s-fail');
    expect(first.body.data?.invoke ?? null).toBeNull();
    const error = first.body.errors![0]!;
    expect(error.extensions!.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(error.message).toContain('token endpoint answered 500');
    expect(error.extensions!.retryAfterMs).toBeGreaterThan(20_000);
    expect(tokenCalls('s-fail')).toHaveLength(1);

    // Within the cooldown: refused at once, the endpoint is not called again.
    const second = await invoke('s-fail');
    expect(second.body.errors![0]!.extensions!.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(tokenCalls('s-fail')).toHaveLength(1);
    expect(apiCalls('s-fail')).toHaveLength(0);
    const info = await credentialOf('s-fail');
    expect(info).toMatchObject({ tokenState: 'FAILING', failures: 1, lastError: 'token endpoint answered 500', expiresAt: null });
    expect(Date.parse(info.cooldownUntil)).toBeGreaterThan(Date.now() + 20_000);
    const metricsAfter = await (await fetch(`${hub.url}/metrics`)).text();
    expect(counter(metricsAfter, 'failed') - counter(metricsBefore, 'failed')).toBe(1);

    // Another process (here: the restarted hub) honours the stored cooldown.
    await restart();
    expect((await invoke('s-fail')).body.errors![0]!.extensions!.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(tokenCalls('s-fail')).toHaveLength(1);

    // After the cooldown, with the endpoint healthy again: a token, and the failures are forgotten.
    scripts.set('s-fail', { mode: 'ok' });
    await db.query(`UPDATE "OAuthToken" SET "cooldownUntil" = now() - interval '1 second' WHERE "systemId" = 's-fail'`);
    await restart();
    expect((await invoke('s-fail')).body.data.invoke.status).toBe(200);
    expect(tokenCalls('s-fail')).toHaveLength(2);
    expect(await credentialOf('s-fail')).toMatchObject({ tokenState: 'VALID', failures: 0, cooldownUntil: null, lastError: null });
    expect(counter(await (await fetch(`${hub.url}/metrics`)).text(), 'ok')).toBe(1);
  });

  const junk: [Script['mode'], RegExp][] = [
    ['unauthorized', /^token endpoint answered 401$/],
    ['hang', /^token endpoint did not answer within 400 ms$/],
    ['not-json', /^token endpoint answer is not JSON$/],
    ['no-token', /^token endpoint answer has no access_token$/],
    ['mac', /^token endpoint answered a token type other than bearer$/],
    ['crlf', /^token endpoint answered an access token that cannot be sent in a header$/],
    ['bad-expiry', /^token endpoint answered an invalid expires_in$/],
  ];
  it.each(junk)('a token endpoint answer of kind %s is a failure, and nothing reaches the called system', async (mode, reason) => {
    const systemId = `s-junk-${mode}`;
    // Only the hanging endpoint needs a short deadline; the others answer at once (a loaded machine may take a while).
    await bindOAuth2(systemId, { script: { mode }, timeoutMs: mode === 'hang' ? 400 : 10_000 });
    const res = await invoke(systemId);
    expect(res.body.errors![0]!.extensions!.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(res.body.errors![0]!.message).not.toContain(IDP_DETAIL);
    expect((await credentialOf(systemId)).lastError).toMatch(reason);
    expect(tokenCalls(systemId)).toHaveLength(1);
    expect(apiCalls(systemId)).toHaveLength(0);
  });

  it('a new credential discards the old access token; so does rebinding the same client', async () => {
    await bindOAuth2('s-rebind');
    await invoke('s-rebind');
    const t1 = bearerOf(apiCalls('s-rebind')[0]!);
    const newSecret = `cs-new-${randomBytes(8).toString('hex')}`;
    secrets.add(newSecret);
    await ok(SET, { s: 's-rebind', c: oauth2Credential('s-rebind', { clientSecret: newSecret }) });
    expect(await db.query(`SELECT 1 FROM "OAuthToken" WHERE "systemId" = 's-rebind'`)).toHaveLength(0);
    expect((await credentialOf('s-rebind')).tokenState).toBe('NOT_OBTAINED');

    await invoke('s-rebind');
    expect(tokenCalls('s-rebind')).toHaveLength(2);
    const basic = Buffer.from(String(tokenCalls('s-rebind')[1]!.headers.authorization).replace(/^Basic /, ''), 'base64').toString();
    expect(basic).toBe(`client-s-rebind:${newSecret}`);
    const t2 = bearerOf(apiCalls('s-rebind')[1]!);
    expect(t2).not.toBe(t1);

    await ok(BIND, { i: { tenantId: 'acme', systemId: 's-rebind', baseUrl: api.url, credential: oauth2Credential('s-rebind', { clientSecret: newSecret }) } });
    await invoke('s-rebind');
    expect(tokenCalls('s-rebind')).toHaveLength(3);
    expect(bearerOf(apiCalls('s-rebind')[2]!)).not.toBe(t2);
  });

  const badInputs: [string, Record<string, unknown>, RegExp][] = [
    ['no clientSecret', { clientSecret: undefined }, /clientSecret is required/],
    ['an empty clientSecret', { clientSecret: '' }, /clientSecret is required/],
    ['no clientId', { clientId: undefined }, /clientId is required/],
    ['no tokenUrl', { tokenUrl: undefined }, /tokenUrl is required/],
    ['a tokenUrl with user info', { tokenUrl: 'https://user:pw@idp.example/token' }, /tokenUrl must not contain user info/],
    ['a tokenUrl with a query', { tokenUrl: 'https://idp.example/token?tenant=x' }, /tokenUrl must not have a query/],
    ['a tokenUrl with a fragment', { tokenUrl: 'https://idp.example/token#x' }, /tokenUrl must not have a fragment/],
    ['a tokenUrl that is not http', { tokenUrl: 'ftp://idp.example/token' }, /tokenUrl must use http or https/],
    ['a relative tokenUrl', { tokenUrl: '/token' }, /tokenUrl is not an absolute URL/],
    ['a clientId with a line break', { clientId: 'id\nX-Injected: 1' }, /clientId must be/],
    ['a clientSecret with a line break', { clientSecret: `${CLIENT_SECRET}\r\n` }, /clientSecret must be/],
    ['a scope with a quote', { scope: 'read "write"' }, /scope must be/],
    ['a token', { token: 'tok-1' }, /credential.token does not apply/],
    ['a headerName', { headerName: 'X-Key' }, /credential.headerName does not apply/],
  ];
  it.each(badInputs)('refuses OAuth2 input with %s: BAD_USER_INPUT, nothing written', async (_, change, message) => {
    if (!scripts.has('s-input')) await bindOAuth2('s-input');
    const bound = (await ok(`{ binding(tenantId: "acme", systemId: "s-input") { credential { updatedAt } } }`)).binding;
    const credential = { ...oauth2Credential('s-input'), ...change };
    for (const k of Object.keys(credential)) if ((credential as Record<string, unknown>)[k] === undefined) delete (credential as Record<string, unknown>)[k];
    // a new binding is not created
    await gql(`mutation { createSystem(input: { id: "s-input-new", name: "n", mode: EXCLUSIVE }) { id } }`);
    const created = await gql(BIND, { i: { tenantId: 'acme', systemId: 's-input-new', baseUrl: api.url, credential } });
    expect(created.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(created.body.errors![0]!.message).toMatch(message);
    expect((await ok(`{ binding(tenantId: "acme", systemId: "s-input-new") { baseUrl } }`)).binding).toBeNull();
    // an existing binding keeps its credential
    const changed = await gql(SET, { s: 's-input', c: credential });
    expect(changed.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect((await ok(`{ binding(tenantId: "acme", systemId: "s-input") { credential { updatedAt } } }`)).binding).toEqual(bound);
  });

  it.runIf(kind === 'postgres')(
    'two hub processes on one PostgreSQL, 100 concurrent calls with an expired token: exactly one token request',
    { timeout: 120_000 },
    async () => {
      // The endpoint answers slowly, so that both processes are inside the refresh at once.
      await bindOAuth2('s-two', { script: { mode: 'ok', firstExpiresIn: 1, expiresIn: 3600, delayMs: 1000 } });
      await bindOAuth2('s-two-warm');
      const child = await startHubProcess({ DATABASE_URL: db.url!, HUB_ENCRYPTION_KEY: env.HUB_ENCRYPTION_KEY!, HUB_ADMIN_KEY: adminKey, HUB_DATA_DIR: dataDir, HUB_LOG_LEVEL: 'debug' });
      const other = { gql: (q: string, v?: Record<string, unknown>) => child.gql(q, v, adminKey) } as unknown as TestHub;
      try {
        // Both processes warm (connections open, code compiled), the stored token of s-two expired.
        for (const on of [hub, other]) expect((await invoke('s-two-warm', { path: '/warm' }, on)).body.data.invoke.status).toBe(200);
        expect((await invoke('s-two')).body.data.invoke.status).toBe(200);
        const expired = bearerOf(apiCalls('s-two')[0]!);
        await sleepPastExpiry('s-two', expired);

        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => invoke('s-two', { path: `/two-${i}` }, i % 2 ? hub : other)));
        expect(results.map((r) => r.body.data?.invoke?.status)).toEqual(Array(100).fill(200));
        expect(tokenCalls('s-two')).toHaveLength(2);
        const sent = new Set(apiCalls('s-two').slice(1).map(bearerOf));
        expect(sent.size).toBe(1);
        expect(sent.has(expired)).toBe(false);
      } finally {
        await child.stop();
        logs.push(...child.lines);
      }
    },
  );

  /**
   * Hubs on a fresh database whose default isolation is REPEATABLE READ, with tenant acme and the
   * OAuth2 system `systemId` bound; its token endpoint holds its first answer until `answer()`.
   * Under REPEATABLE READ a transaction's snapshot is taken by its first query, which may be one
   * that waits for a lock: what the lock's holder stores meanwhile is invisible to it.
   */
  async function withRepeatableRead(
    systemId: string,
    hubCount: number,
    run: (t: { hubs: TestHub[]; rrDb: TestDatabase; answer: () => void }) => Promise<void>,
  ) {
    const rrDb = await createTestDatabase(kind);
    await repeatableReadByDefault(rrDb);
    const dirs: string[] = [];
    const hubs: TestHub[] = [];
    let answer!: () => void;
    try {
      for (let i = 0; i < hubCount; i++) {
        dirs.push(await mkdtemp(path.join(tmpdir(), 'hub-oauth2-rr-')));
        hubs.push(await startTestHub(kind, { db: rrDb, dataDir: dirs[i]!, env }));
      }
      const must = async (q: string, v?: Record<string, unknown>) => expect((await gql(q, v, hubs[0])).body.errors).toBeUndefined();
      await must(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`);
      await must(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: { id: systemId, name: systemId, mode: 'EXCLUSIVE' } });
      await must(BIND, { i: { tenantId: 'acme', systemId, baseUrl: api.url, credential: oauth2Credential(systemId) } });
      scripts.set(systemId, { mode: 'ok', until: new Promise<void>((resolve) => (answer = resolve)) });
      await run({ hubs, rrDb, answer: () => answer() });
    } finally {
      answer?.();
      for (const h of hubs) {
        logs.push(...h.logs);
        await h.close();
      }
      await rrDb.drop();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    }
  }

  it.runIf(kind === 'postgres')(
    'two hubs on a database whose default isolation is REPEATABLE READ: the one that waited for the lock uses the token the other stored',
    { timeout: 60_000 },
    () =>
      withRepeatableRead('s-rr', 2, async ({ hubs: [first, second], rrDb, answer }) => {
        // The first hub asks for a token and holds the binding's lock until the endpoint answers;
        // the second waits for the lock meanwhile.
        const one = invoke('s-rr', { path: '/rr-1' }, first);
        while (tokenCalls('s-rr').length === 0) await sleep(20);
        const two = invoke('s-rr', { path: '/rr-2' }, second);
        await lockWaiters(rrDb, { event: 'advisory' });
        answer();

        const results = await Promise.all([one, two]);
        expect(results.map((r) => r.body.errors ?? r.body.data.invoke.status)).toEqual([200, 200]);
        expect(tokenCalls('s-rr')).toHaveLength(1);
        expect(new Set(apiCalls('s-rr').map(bearerOf)).size).toBe(1);
      }),
  );

  it.runIf(kind === 'postgres')(
    'a credential changed during a token request on a REPEATABLE READ database: the token of the old client is never used again',
    { timeout: 60_000 },
    () =>
      withRepeatableRead('s-rr-cred', 1, async ({ hubs: [only], rrDb, answer }) => {
        // The refresh holds the binding's row (FOR SHARE) until the endpoint answers; the credential
        // change waits for it, and must then delete the token that refresh stored.
        const one = invoke('s-rr-cred', { path: '/before' }, only);
        while (tokenCalls('s-rr-cred').length === 0) await sleep(20);
        const changed = gql(SET, { s: 's-rr-cred', c: oauth2Credential('s-rr-cred', { clientId: 'client-new' }) }, only);
        await lockWaiters(rrDb, { event: 'transactionid' });
        answer();
        expect((await one).body.data?.invoke?.status).toBe(200);
        expect((await changed).body.errors).toBeUndefined();
        const old = bearerOf(apiCalls('s-rr-cred')[0]!);

        expect((await invoke('s-rr-cred', { path: '/after' }, only)).body.data?.invoke?.status).toBe(200);
        expect(tokenCalls('s-rr-cred')).toHaveLength(2);
        const basic = Buffer.from(String(tokenCalls('s-rr-cred')[1]!.headers.authorization).replace(/^Basic /, ''), 'base64').toString();
        expect(basic).toMatch(/^client-new:/);
        expect(bearerOf(apiCalls('s-rr-cred').at(-1)!)).not.toBe(old);
      }),
  );

  // A call resolves its target (address and credential) before it asks for a token; the credential
  // may change in between. The token it then gets belongs to another client: it must not be sent.
  it.runIf(kind === 'postgres')(
    'a binding moved to another address and client while a call waited for its token: the call fails with UPSTREAM_AUTH_FAILED and sends nothing',
    { timeout: 30_000 },
    async () => {
      await bindOAuth2('s-moved');
      // Another process's refresh of this binding holds its lock: the call's refresh waits for it.
      const holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${lockKey('acme', 's-moved')})`);
        const stale = invoke('s-moved', { path: '/stale' });
        await lockWaiters(db, { event: 'advisory' });
        await ok(BIND, { i: { tenantId: 'acme', systemId: 's-moved', baseUrl: `${api.url}/moved`, credential: oauth2Credential('s-moved', { clientId: 'client-moved' }) } });
        await holder.query('ROLLBACK');

        const res = await stale;
        expect(res.body.errors?.[0]?.extensions?.code).toBe('UPSTREAM_AUTH_FAILED');
        expect(res.body.errors?.[0]?.message).toMatch(/changed during this call; retry/);
      } finally {
        await holder.end();
      }
      expect(api.requests.filter((r) => r.url.includes('/stale'))).toHaveLength(0);
      // The next call goes to the new address with the new client's token.
      expect((await invoke('s-moved', { path: '/fresh' })).body.data?.invoke?.status).toBe(200);
      const fresh = api.requests.filter((r) => r.url.includes('/fresh'));
      expect(fresh.map((r) => r.url)).toEqual(['/moved/s-moved/fresh']);
      expect(tokenCalls('s-moved')).toHaveLength(1);
      expect(Buffer.from(String(tokenCalls('s-moved')[0]!.headers.authorization).replace(/^Basic /, ''), 'base64').toString()).toMatch(/^client-moved:/);
    },
  );

  // On PGlite no lock is held across the token request: a credential change goes through at once,
  // and a call made after it must not join the refresh of the old client.
  it.runIf(kind === 'pglite')(
    'a call after a credential change does not take the token a refresh of the old client was still getting',
    { timeout: 30_000 },
    async () => {
      let answer!: () => void;
      await bindOAuth2('s-join', { script: { mode: 'ok', until: new Promise<void>((resolve) => (answer = resolve)) } });
      const before = invoke('s-join', { path: '/before' });
      while (tokenCalls('s-join').length === 0) await sleep(20);
      await ok(SET, { s: 's-join', c: oauth2Credential('s-join', { clientId: 'client-joined' }) });
      const after = invoke('s-join', { path: '/after' });
      await sleep(100); // the second call is waiting for the running refresh
      answer();

      const [b, a] = await Promise.all([before, after]);
      expect([b.body.data?.invoke?.status, a.body.data?.invoke?.status]).toEqual([200, 200]);
      const clients = tokenCalls('s-join').map((r) => Buffer.from(String(r.headers.authorization).replace(/^Basic /, ''), 'base64').toString().split(':')[0]);
      expect(clients).toEqual(['client-s-join', 'client-joined']);
      const bearerAt = (p: string) => bearerOf(api.requests.find((r) => r.url === `/s-join${p}`)!);
      expect(bearerAt('/after')).not.toBe(bearerAt('/before'));
    },
  );

  it('rotateEncryptionKey re-encrypts stored access tokens (still used without a token request) and stored idempotent answers', async () => {
    await bindOAuth2('s-rotate');
    await invoke('s-rotate');
    const t1 = bearerOf(apiCalls('s-rotate')[0]!);
    const keyed = () => gql(`query($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) { status replayed } }`, { t: 'acme', s: 's-rotate', p: { path: '/s-rotate/keyed', idempotencyKey: 'rotate-1' } });
    expect((await keyed()).body.data.invoke).toEqual({ status: 200, replayed: false });
    const newKey = randomBytes(32).toString('base64');
    await restart({ HUB_ENCRYPTION_KEY: newKey, HUB_ENCRYPTION_PREVIOUS_KEYS: encryptionKey });
    const { keyId } = (await ok(`mutation { rotateEncryptionKey { rotated keyId } }`)).rotateEncryptionKey;
    const rows = await db.query<{ keyId: string }>(`SELECT "keyId" FROM "OAuthToken" WHERE ciphertext IS NOT NULL`);
    expect(rows.length).toBeGreaterThan(3);
    expect(rows.every((r) => r.keyId === keyId)).toBe(true);
    await restart({ HUB_ENCRYPTION_PREVIOUS_KEYS: '' }); // the old key is gone
    expect((await invoke('s-rotate')).body.data.invoke.status).toBe(200);
    expect(bearerOf(apiCalls('s-rotate')[2]!)).toBe(t1);
    expect(tokenCalls('s-rotate')).toHaveLength(1);
    const answers = await db.query<{ keyId: string }>(`SELECT "keyId" FROM "IdempotencyRecord" WHERE "key" = 'rotate-1'`);
    expect(answers.map((r) => r.keyId)).toEqual([keyId]);
    expect((await keyed()).body.data.invoke).toEqual({ status: 200, replayed: true });
    expect(apiCalls('s-rotate')).toHaveLength(3);
  });

  it('never shows a token or client secret in a response, log line, invocation record or in clear in the database', async () => {
    expect(secrets.size).toBeGreaterThan(10);
    await hub.hub.audit.flush();
    const rows = await db.query<{ row: string }>(
      `SELECT row_to_json(b)::text AS row FROM "Binding" b UNION ALL SELECT row_to_json(t)::text FROM "OAuthToken" t UNION ALL SELECT row_to_json(i)::text FROM "Invocation" i`,
    );
    expect(rows.length).toBeGreaterThan(50);
    const texts = { responses: responses.join('\n'), logs: [...logs, ...hub.logs].join('\n'), database: rows.map((r) => r.row).join('\n') };
    expect(texts.logs).toContain('token request failed');
    expect(texts.logs).toContain('access token obtained');
    for (const secret of secrets) for (const [where, text] of Object.entries(texts)) expect(`${where}: ${text.includes(secret)}`).toBe(`${where}: false`);
    expect(Object.values(texts).join('\n')).not.toContain(IDP_DETAIL);
  });
});

function counter(text: string, outcome: string): number {
  const m = new RegExp(`^hub_token_refreshes_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

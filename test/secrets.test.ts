// Tokens, client secrets and API keys never leave the hub: not in a response, an error, a log line
// (at debug level) or an invocation record; at rest they are encrypted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const BEARER = 'sk_live_bearer_51HSECRETbearer';
const HEADER_TOKEN = 'hdr-SECRET-value-9931';
const ROTATED = 'rotated-SECRET-token-4410';
const OAUTH_SECRET = 'oauth-client-SECRET-123';

describe.each(testDatabases())('secrets on %s', (kind) => {
  let hub: TestHub;
  let upstream: Upstream;
  let callerKey: string;
  const responses: string[] = [];

  const call = async (query: string, variables?: Record<string, unknown>, key?: string) => {
    const res = await hub.gql(query, variables, key ? { key } : undefined);
    responses.push(JSON.stringify(res.body));
    return res;
  };

  beforeAll(async () => {
    upstream = await startUpstream();
    upstream.route('/fail', (_, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('upstream exploded');
    });
    hub = await startTestHub(kind); // debug logging
    await call(`mutation { createTenant(input: { id: "t1", name: "T1" }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s1", name: "S1", mode: EXCLUSIVE }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s2", name: "S2", mode: SHARED, sharedBaseUrl: "${upstream.url}" }) { id } }`);
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s1", baseUrl: "${upstream.url}", credential: $c }) { baseUrl credential { kind headerName updatedAt } } }`, {
      c: { kind: 'BEARER', token: BEARER },
    });
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s2", credential: $c }) { baseUrl credential { kind headerName } } }`, {
      c: { kind: 'HEADER', headerName: 'X-Key', token: HEADER_TOKEN },
    });
    callerKey = await createCallerWithGrant(hub, { id: 'c1', grants: [{ tenantId: 't1' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await upstream?.close();
  });

  it('uses the tokens upstream but never shows them', async () => {
    await call(INVOKE_QUERY, { t: 't1', s: 's1', p: { path: '/ok' } }, callerKey);
    await call(INVOKE_QUERY, { t: 't1', s: 's2', p: { path: '/ok' } }, callerKey);
    await call(INVOKE_QUERY, { t: 't1', s: 's1', p: { path: '/fail' } }, callerKey);
    await call(INVOKE_MUTATION, { t: 't1', s: 's1', p: { method: 'POST', path: '/ok', headers: { Authorization: 'Bearer x' } } }, callerKey);
    await call(`mutation { setCredential(tenantId: "t1", systemId: "s1", credential: { kind: BEARER, token: "${ROTATED}" }) { credential { kind updatedAt } } }`);
    await call(INVOKE_QUERY, { t: 't1', s: 's1', p: { path: '/after-rotation' } }, callerKey);
    // refused credential input must not echo the secret
    await call(`mutation($c: CredentialInput!) { setCredential(tenantId: "t1", systemId: "s1", credential: $c) { credential { kind } } }`, {
      c: { kind: 'OAUTH2_CLIENT_CREDENTIALS', tokenUrl: 'https://id.example.com/token?x=1', clientId: 'cid', clientSecret: OAUTH_SECRET },
    });
    await call(`mutation($c: CredentialInput!) { setCredential(tenantId: "t1", systemId: "s1", credential: $c) { credential { kind } } }`, {
      c: { kind: 'BEARER', token: `${BEARER}\nX-Injected: 1` },
    });
    await call(`{ binding(tenantId: "t1", systemId: "s1") { baseUrl credential { kind headerName updatedAt expiresAt } } tenants { edges { node { bindings { credential { kind } } } } } }`);
    await call(`{ callers { edges { node { id apiKeys { prefix } } } } invocations(first: 50) { edges { node { path code status requestId } } } }`);

    // The echo upstream sends the injected header back: the hub scrubs its own secret from answers.
    expect(responses.join('\n')).toContain('"authorization":"Bearer [redacted]"');
    const sent = upstream.requests.map((r) => r.headers);
    expect(sent.some((h) => h.authorization === `Bearer ${BEARER}`)).toBe(true);
    expect(sent.some((h) => h['x-key'] === HEADER_TOKEN)).toBe(true);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${ROTATED}`);
    expect(hub.logs.length).toBeGreaterThan(5);

    const secrets = [BEARER, HEADER_TOKEN, ROTATED, OAUTH_SECRET, callerKey, hub.adminKey];
    const everything = [responses.join('\n'), hub.logs.join('\n')];
    for (const secret of secrets) for (const text of everything) expect(text).not.toContain(secret);
  });

  it('stores credentials encrypted and records no secret in invocation rows', async () => {
    const rows = await hub.db.query<{ row: string }>(`SELECT row_to_json(b)::text AS row FROM "Binding" b`);
    const invocations = await hub.db.query<{ row: string }>(`SELECT row_to_json(i)::text AS row FROM "Invocation" i`);
    const keys = await hub.db.query<{ row: string }>(`SELECT row_to_json(k)::text AS row FROM "ApiKey" k`);
    expect(invocations.length).toBeGreaterThan(3);
    const stored = [...rows, ...invocations, ...keys].map((r) => r.row).join('\n');
    for (const secret of [BEARER, HEADER_TOKEN, ROTATED, callerKey, hub.adminKey]) expect(stored).not.toContain(secret);
    expect(rows.every((r) => JSON.parse(r.row).credentialKeyId)).toBe(true);
  });
});

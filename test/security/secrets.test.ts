// Attack suite, secrets (issue 3, part 6). A full run at debug log level with every kind of secret
// the hub handles (bearer, header and rotated tokens, a refused OAuth2 client secret, admin and caller
// API keys, a revoked and a wrong key), failing called systems that echo what they received, refused
// inputs and a tampered ciphertext; then every response body, every log line and every row of every
// table is searched for every secret. Then key rotation across restarts, and tampered ciphertexts.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY } from '../helpers/seed.js';
import { startCanary, type Canary } from '../helpers/security-canary.js';
import { createTestDatabase, lockWaiters } from '../helpers/test-database.js';
import { startTestHub, type GqlResponse, type TestHub } from '../helpers/test-hub.js';

const BEARER = 'sk_live_51BEARERsecretQ7x';
const HEADER_TOKEN = 'hdr-SECRET-value-9931-zz';
const ROTATED = 'rotated-SECRET-token-4410';
const BATCH_TOKEN = 'batch-SECRET-token-8812';
const TAMPER_TOKEN = 'tamper-SECRET-token-6673';
const OAUTH_SECRET = 'oauth-client-SECRET-123';
const REFUSED_TOKEN = 'refused-SECRET-token-5150';
const INLINE_TOKEN = 'inline-SECRET-token-3141';

const codeOf = (res: GqlResponse) => res.body.errors?.[0]?.extensions?.code as string | undefined;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const keyIdOf = (base64Key: string) => createHash('sha256').update(Buffer.from(base64Key, 'base64')).digest('hex').slice(0, 12);

/** Every row of every table of the hub's schema, as JSON text. */
async function everyRow(hub: TestHub): Promise<{ table: string; row: string }[]> {
  const tables = await hub.db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: { table: string; row: string }[] = [];
  for (const { name } of tables) {
    for (const r of await hub.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${name}" t`)) out.push({ table: name, row: r.row });
  }
  return out;
}

describe.each(testDatabases())('secrets on %s', (kind) => {
  let hub: TestHub;
  let up: Canary;
  let callerKey: string;
  let issuedKey: string;
  let revokedKey: string;
  const wrongKey = `thub_${randomBytes(32).toString('base64url').replace(/[-_]/g, 'x').slice(0, 43)}`;
  /** every response body of the run, except the two that show a new API key once */
  const responses: string[] = [];
  let tampered: GqlResponse;
  let tamperedSentBefore = 0;
  let tamperedSentAfter = 0;

  const call = async (query: string, variables?: Record<string, unknown>, key?: string | null) => {
    const res = await hub.gql(query, variables, key === undefined ? undefined : { key });
    responses.push(JSON.stringify(res.body));
    return res;
  };
  const invoke = (s: string, p: Record<string, unknown>, key: string | null = callerKey) => call(INVOKE_QUERY, { t: 't1', s, p }, key);
  const invokeMutation = (s: string, p: Record<string, unknown>, key: string | null = callerKey) => call(INVOKE_MUTATION, { t: 't1', s, p }, key);

  beforeAll(async () => {
    up = await startCanary();
    // Called systems that give back what they received, in every way a badly built one might.
    const received = (req: { headers: Record<string, unknown> }) => `auth=${req.headers.authorization} key=${req.headers['x-key']}`;
    up.route('/fail-text', (req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`upstream exploded; ${received(req)}`);
    });
    up.route('/fail-json', (req, res) => {
      res.writeHead(502, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ title: 'bad gateway', detail: received(req) }));
    });
    up.route('/leaky-headers', (req, res) => {
      const auth = String(req.headers.authorization ?? req.headers['x-key']);
      res.writeHead(401, {
        location: `https://login.example/?token=${encodeURIComponent(auth)}&raw=${auth}`,
        link: `<https://x.example/${auth}>; rel="next"`,
        'www-authenticate': `Bearer error="invalid_token", token="${auth}"`,
        'x-debug-auth': auth,
        'content-type': 'text/plain',
      });
      res.end();
    });
    up.route('/slow', () => {
      /* never answers: the system's timeout ends the call */
    });
    up.route('/reset', (req, res) => {
      res.socket?.destroy();
    });
    up.route('/batch', (req, res) => {
      const { requests } = JSON.parse(req.body) as { requests: { id: string; url: string }[] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ responses: requests.map((r) => ({ id: r.id, status: 200, headers: { 'content-type': 'text/plain', location: `/${req.headers.authorization}` }, body: { seen: req.headers.authorization, url: r.url } })) }));
    });

    hub = await startTestHub(kind); // HUB_LOG_LEVEL=debug
    await call(`mutation { createTenant(input: { id: "t1", name: "T1" }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s-bearer", name: "Bearer", mode: EXCLUSIVE, timeoutMs: 1000 }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s-header", name: "Header", mode: SHARED, sharedBaseUrl: "${up.url}" }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s-batch", name: "Batch", mode: EXCLUSIVE, batchPath: "/batch" }) { id } }`);
    await call(`mutation { createSystem(input: { id: "s-tamper", name: "Tamper", mode: EXCLUSIVE }) { id } }`);
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s-bearer", baseUrl: "${up.url}", credential: $c }) { baseUrl credential { kind } } }`, {
      c: { kind: 'BEARER', token: BEARER },
    });
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s-header", credential: $c }) { baseUrl credential { kind headerName } } }`, {
      c: { kind: 'HEADER', headerName: 'X-Key', token: HEADER_TOKEN },
    });
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s-batch", baseUrl: "${up.url}", credential: $c }) { baseUrl } }`, {
      c: { kind: 'BEARER', token: BATCH_TOKEN },
    });
    await call(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "s-tamper", baseUrl: "${up.url}/tamper", credential: $c }) { baseUrl } }`, {
      c: { kind: 'BEARER', token: TAMPER_TOKEN },
    });
    callerKey = await createCallerWithGrant(hub, { id: 'c1', tenantId: 't1', grants: [{ tenantId: 't1' }] });
    issuedKey = (await hub.admin(`mutation { issueApiKey(callerId: "c1") { apiKey } }`)).issueApiKey.apiKey;
    const revoked = await hub.admin(`mutation { issueApiKey(callerId: "c1") { apiKey key { id } } }`);
    revokedKey = revoked.issueApiKey.apiKey;
    await call(`mutation { revokeApiKey(id: "${revoked.issueApiKey.key.id}") { revokedAt } }`);

    // Calls that succeed, with both caller keys.
    await invoke('s-bearer', { path: '/ok' });
    await invoke('s-header', { path: '/ok' }, issuedKey);
    await invokeMutation('s-bearer', { method: 'POST', path: '/ok', body: { hello: 'world' } });
    await call(`{ a: invoke(tenantId: "t1", systemId: "s-batch", params: { path: "/one" }) { status headers data }
                  b: invoke(tenantId: "t1", systemId: "s-batch", params: { path: "/two" }) { status headers data } }`, undefined, callerKey);
    // Called systems that fail and give back what they received.
    for (const path of ['/fail-text', '/fail-json', '/leaky-headers', '/slow', '/reset']) await invoke('s-bearer', { path });
    for (const path of ['/fail-text', '/fail-json', '/leaky-headers', '/reset']) await invoke('s-header', { path });
    // Rotation of a token.
    await call(`mutation { setCredential(tenantId: "t1", systemId: "s-bearer", credential: { kind: BEARER, token: "${ROTATED}" }) { credential { kind updatedAt } } }`);
    await invoke('s-bearer', { path: '/after-rotation' });
    await invoke('s-bearer', { path: '/fail-text' });
    // Refused inputs that carry secrets.
    await call(`mutation($c: CredentialInput!) { setCredential(tenantId: "t1", systemId: "s-bearer", credential: $c) { credential { kind } } }`, {
      c: { kind: 'OAUTH2_CLIENT_CREDENTIALS', tokenUrl: 'https://id.example.com/token?x=1', clientId: 'cid', clientSecret: OAUTH_SECRET },
    });
    await call(`mutation { setCredential(tenantId: "t1", systemId: "s-bearer", credential: { kind: BEARER, token: "${REFUSED_TOKEN}\\r\\nX-Injected: 1" }) { credential { kind } } }`);
    await call(`mutation($c: CredentialInput!) { setCredential(tenantId: "t1", systemId: "s-header", credential: $c) { credential { kind } } }`, {
      c: { kind: 'HEADER', headerName: 'Host', token: REFUSED_TOKEN },
    });
    await call(`mutation($c: CredentialInput!) { setCredential(tenantId: "t1", systemId: "s-header", credential: $c) { credential { kind } } }`, {
      c: { kind: 'BEARER', token: REFUSED_TOKEN, headerName: 'X-Key' },
    });
    // A valid token written into a multi-line document, in a mutation that fails for another reason.
    await call(`mutation {
      bindSystem(input: { tenantId: "no-such-tenant", systemId: "s-bearer", baseUrl: "${up.url}",
        credential: { kind: BEARER, token: "${INLINE_TOKEN}" } }) { baseUrl }
    }`);
    await invoke('s-bearer', { path: '/x', headers: { Authorization: `Bearer ${callerKey}` } });
    await invoke('s-header', { path: '/x', headers: { 'X-Key': issuedKey } });
    await invoke('s-bearer', { path: '/../admin' });
    await invoke('nope', { path: '/x' });
    // Authentication failures with real, revoked and wrong keys.
    await call(`{ viewer { role } }`, undefined, revokedKey);
    await call(`{ viewer { role } }`, undefined, wrongKey);
    await hub.gql(`{ viewer { role } }`, undefined, { key: null, headers: { authorization: `Basic ${callerKey}` } }).then((r) => responses.push(JSON.stringify(r.body)));
    await hub.gql(`{ viewer { role } }`, undefined, { key: null, headers: { authorization: `Bearer ${callerKey}x` } }).then((r) => responses.push(JSON.stringify(r.body)));
    // A caller asking for admin things.
    await call(`{ binding(tenantId: "t1", systemId: "s-bearer") { baseUrl credential { kind } } }`, undefined, callerKey);
    // Everything an admin can read.
    await call(`{ tenants(first: 50) { edges { node { id bindings { baseUrl credential { kind headerName updatedAt expiresAt } } } } } }`);
    await call(`{ callers(first: 50) { edges { node { id apiKeys { id prefix createdAt lastUsedAt revokedAt } grants { id } } } } }`);
    await call(`{ invocations(first: 200) { edges { node { id path code status requestId method callerId tenantId systemId } } } }`);
    await call(`{ invocations(first: 200) { edges { node { id path code } } } }`, undefined, callerKey);

    // A tampered ciphertext: one base64 character of the sealed body changed in the database.
    const [row] = await hub.db.query<{ c: string }>(`SELECT "credentialCiphertext" AS c FROM "Binding" WHERE "systemId" = 's-tamper'`);
    const parts = row!.c.split(':');
    parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
    await hub.db.query(`UPDATE "Binding" SET "credentialCiphertext" = $1 WHERE "systemId" = 's-tamper'`, [parts.join(':')]);
    tamperedSentBefore = up.requests.filter((r) => r.url.startsWith('/tamper')).length + up.connections;
    tampered = await invoke('s-tamper', { path: '/anything' });
    tamperedSentAfter = up.requests.filter((r) => r.url.startsWith('/tamper')).length + up.connections;
  }, 120_000);
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  const secrets = () => ({ BEARER, HEADER_TOKEN, ROTATED, BATCH_TOKEN, TAMPER_TOKEN, OAUTH_SECRET, REFUSED_TOKEN, INLINE_TOKEN, callerKey, issuedKey, revokedKey, wrongKey, adminKey: hub.adminKey });

  it('used the tokens upstream (control: the secrets searched for below did travel)', () => {
    const sent = up.requests.map((r) => r.headers);
    expect(sent.some((h) => h.authorization === `Bearer ${BEARER}`)).toBe(true);
    expect(sent.some((h) => h.authorization === `Bearer ${ROTATED}`)).toBe(true);
    expect(sent.some((h) => h.authorization === `Bearer ${BATCH_TOKEN}`)).toBe(true);
    expect(sent.some((h) => h['x-key'] === HEADER_TOKEN)).toBe(true);
    expect(up.requests.some((r) => r.url === '/batch')).toBe(true);
    expect(responses.length).toBeGreaterThan(40);
    expect(hub.logs.length).toBeGreaterThan(40);
    expect(hub.logs.some((l) => l.includes('"level":"debug"'))).toBe(true);
  });

  it('shows no secret in any response body', () => {
    const text = responses.join('\n');
    const leaked = Object.entries(secrets()).filter(([, secret]) => text.includes(secret));
    expect(leaked.map(([name]) => name), 'secrets found in response bodies').toEqual([]);
    // What echoing systems sent back reached the caller only with the secret scrubbed.
    expect(text).toContain('upstream exploded');
    expect(text).toContain('[redacted]');
  });

  it('writes no secret into any log line (debug level)', () => {
    const leaked = Object.entries(secrets())
      .map(([name, secret]) => ({ name, line: hub.logs.find((l) => l.includes(secret)) }))
      .filter((x) => x.line !== undefined);
    expect(leaked, 'secrets found in log lines').toEqual([]);
  });

  it('stores no secret in any row of any table, the ciphertext included', async () => {
    const rows = await everyRow(hub);
    expect(rows.some((r) => r.table === 'Binding')).toBe(true);
    expect(rows.some((r) => r.table === 'InvocationGroup')).toBe(true);
    expect(rows.some((r) => r.table === 'ApiKey')).toBe(true);
    const stored = Object.entries(secrets())
      .map(([name, secret]) => ({ name, row: rows.find((r) => r.row.includes(secret) || r.row.includes(b64(secret)) || r.row.includes(b64(JSON.stringify({ token: secret })))) }))
      .filter((x) => x.row !== undefined);
    expect(stored, 'secrets found in database rows').toEqual([]);
    // Every stored credential is sealed, with a key id.
    const bindings = rows.filter((r) => r.table === 'Binding').map((r) => JSON.parse(r.row));
    const sealed = bindings.filter((b) => b.credentialKind !== 'NONE');
    expect(sealed.length).toBe(4);
    for (const b of sealed) {
      expect(b.credentialCiphertext).toMatch(/^v1:/);
      expect(b.credentialKeyId).toMatch(/^[0-9a-f]{12}$/);
    }
  });

  it('answers a tampered ciphertext with a masked INTERNAL_SERVER_ERROR and sends nothing', () => {
    expect(codeOf(tampered), JSON.stringify(tampered.body)).toBe('INTERNAL_SERVER_ERROR');
    expect(tampered.body.data?.invoke ?? null).toBeNull();
    expect(tamperedSentAfter).toBe(tamperedSentBefore);
    const text = JSON.stringify(tampered.body);
    expect(text).not.toMatch(/Unsupported state|unable to authenticate|auth tag|aes|gcm|v1:|stack|\bat /i);
  });

  describe('more tampering (each refused with one masked message, nothing sent)', () => {
    // Each case tampers with a binding that was never invoked, so that no process-wide cache of
    // opened credentials can hide the change.
    const CASES = ['x-source', 'x-copy', 'x-unknown-key', 'x-truncated', 'x-tag', 'x-log'];
    const sealed = new Map<string, { c: string; k: string }>();
    const messages: string[] = [];
    beforeAll(async () => {
      for (const id of CASES) {
        await hub.admin(`mutation { createSystem(input: { id: "${id}", name: "${id}", mode: EXCLUSIVE }) { id } }`);
        await hub.admin(`mutation { bindSystem(input: { tenantId: "t1", systemId: "${id}", baseUrl: "${up.url}/${id}", credential: { kind: BEARER, token: "${id}-SECRET-tok" } }) { baseUrl } }`);
        const [row] = await hub.db.query<{ c: string; k: string }>(`SELECT "credentialCiphertext" AS c, "credentialKeyId" AS k FROM "Binding" WHERE "systemId" = $1`, [id]);
        sealed.set(id, row!);
      }
      messages.push(tampered.body.errors?.[0]?.message ?? '');
    });
    const setSealed = (id: string, c: string, k: string) => hub.db.query(`UPDATE "Binding" SET "credentialCiphertext" = $1, "credentialKeyId" = $2 WHERE "systemId" = $3`, [c, k, id]);

    const expectRefused = async (systemId: string) => {
      const before = up.requests.length;
      const connections = up.connections;
      const res = await hub.gql(INVOKE_QUERY, { t: 't1', s: systemId, p: { path: '/after-tamper' } }, { key: callerKey });
      expect(codeOf(res), JSON.stringify(res.body)).toBe('INTERNAL_SERVER_ERROR');
      expect(res.body.data?.invoke ?? null).toBeNull();
      expect(up.requests.length, 'a request was sent').toBe(before);
      expect(up.connections, 'a connection was opened').toBe(connections);
      messages.push(res.body.errors![0]!.message);
      const text = JSON.stringify(res.body);
      for (const secret of [...CASES.map((c) => `${c}-SECRET-tok`), sealed.get(systemId)!.k, sealed.get(systemId)!.c.split(':')[2]!]) expect(text).not.toContain(secret);
      return res;
    };

    it("refuses another binding's ciphertext copied into this row (sealed to its owner)", async () => {
      await setSealed('x-copy', sealed.get('x-source')!.c, sealed.get('x-source')!.k);
      await expectRefused('x-copy');
    });

    it('refuses an unknown key id', async () => {
      await setSealed('x-unknown-key', sealed.get('x-unknown-key')!.c, '000000000000');
      await expectRefused('x-unknown-key');
    });

    it('refuses a truncated ciphertext', async () => {
      const [v, iv, tag] = sealed.get('x-truncated')!.c.split(':');
      await setSealed('x-truncated', `${v}:${iv}:${tag}`, sealed.get('x-truncated')!.k);
      await expectRefused('x-truncated');
    });

    it('refuses a changed authentication tag', async () => {
      const [v, iv, tag, body] = sealed.get('x-tag')!.c.split(':');
      const flipped = (tag![0] === 'A' ? 'B' : 'A') + tag!.slice(1);
      await setSealed('x-tag', `${v}:${iv}:${flipped}:${body}`, sealed.get('x-tag')!.k);
      await expectRefused('x-tag');
    });

    it('opens the untouched source binding (control: the cases above failed only by tampering)', async () => {
      const before = up.requests.length;
      const res = await hub.gql(INVOKE_QUERY, { t: 't1', s: 'x-source', p: { path: '/fine' } }, { key: callerKey });
      expect(res.body.errors).toBeUndefined();
      expect(up.requests.length).toBe(before + 1);
      expect(up.requests.at(-1)!.headers.authorization).toBe('Bearer x-source-SECRET-tok');
    });

    it('gives the same message for every kind of tampering (which part was wrong is not told)', () => {
      expect(messages.length).toBe(5);
      expect(new Set(messages).size).toBe(1);
    });

    it('leaves a server log line naming the binding whose credential could not be opened', async () => {
      const from = hub.logs.length;
      await setSealed('x-log', sealed.get('x-log')!.c, '000000000000');
      await expectRefused('x-log');
      const lines = hub.logs.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>);
      const detail = lines.find((l) => (l.level === 'error' || l.level === 'warn') && JSON.stringify(l).includes('x-log'));
      expect(detail, `no warn/error line names the binding: ${JSON.stringify(lines)}`).toBeDefined();
    });
  });

  describe('a called system that escapes "/" in its JSON echo (PHP json_encode style)', () => {
    let php: Canary;
    let h: TestHub;
    const SLASHED = 'tok/with+slash/SECRET==';
    beforeAll(async () => {
      php = await startCanary();
      php.route('/', (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ received: req.headers.authorization, key: req.headers['x-key'] }).replaceAll('/', '\\/'));
      });
      h = await startTestHub(kind);
      await h.admin(`mutation { createTenant(input: { id: "t1", name: "T1" }) { id } }`);
      await h.admin(`mutation { createSystem(input: { id: "php", name: "PHP", mode: EXCLUSIVE }) { id } }`);
      await h.admin(`mutation($c: CredentialInput) { bindSystem(input: { tenantId: "t1", systemId: "php", baseUrl: "${php.url}", credential: $c }) { baseUrl } }`, {
        c: { kind: 'BEARER', token: SLASHED },
      });
    });
    afterAll(async () => {
      await h?.close();
      await php?.close();
    });

    it('does not hand the token to the caller', async () => {
      const res = await h.gql(INVOKE_QUERY, { t: 't1', s: 'php', p: { path: '/echo' } });
      expect(res.body.errors).toBeUndefined();
      expect(php.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SLASHED}`);
      expect(JSON.stringify(res.body)).not.toContain(SLASHED);
    });
  });
});

describe.each(testDatabases())('encryption key rotation on %s', (kind) => {
  it('re-encrypts every credential with the new key across restarts', async () => {
    const K1 = randomBytes(32).toString('base64');
    const K2 = randomBytes(32).toString('base64');
    const adminKey = `rotation-admin-${randomBytes(16).toString('hex')}`;
    const TOKENS: Record<string, string> = { 'r-bearer': 'rot-bearer-SECRET-1', 'r-header': 'rot-header-SECRET-2', 'r-shared': 'rot-shared-SECRET-3' };
    const up = await startCanary();
    const db = await createTestDatabase(kind);
    const logs: string[] = [];
    const hubs: TestHub[] = [];
    const start = async (env: Record<string, string>) => {
      const h = await startTestHub(kind, { db, env: { HUB_ADMIN_KEY: adminKey, ...env } });
      hubs.push(h);
      return h;
    };
    const stop = async (h: TestHub) => {
      await h.close();
      logs.push(...h.logs);
    };
    const credentialRows = () =>
      db.query<{ systemId: string; keyId: string; ciphertext: string }>(
        `SELECT "systemId", "credentialKeyId" AS "keyId", "credentialCiphertext" AS ciphertext FROM "Binding" WHERE "credentialCiphertext" IS NOT NULL ORDER BY 1`,
      );
    let callerKey = '';
    /** Invokes every bound system; true when each reached the canary with its own token. */
    const invokeAll = async (h: TestHub) => {
      const outcome: Record<string, string> = {};
      for (const s of ['r-bearer', 'r-header', 'r-shared', 'r-none']) {
        const before = up.requests.length;
        const res = await h.gql(INVOKE_QUERY, { t: 'rt', s, p: { path: `/${s}` } }, { key: callerKey });
        if (res.body.errors) {
          expect(up.requests.length, `${s} sent a request although it failed`).toBe(before);
          outcome[s] = codeOf(res)!;
          continue;
        }
        const sent = up.requests.at(-1)!.headers;
        const token = TOKENS[s];
        const ok = token === undefined ? !sent.authorization && !sent['x-key'] : sent.authorization === `Bearer ${token}` || sent['x-key'] === token;
        outcome[s] = ok ? 'ok' : 'wrong token';
      }
      return outcome;
    };
    const allOk = { 'r-bearer': 'ok', 'r-header': 'ok', 'r-shared': 'ok', 'r-none': 'ok' };

    try {
      // 1. Credentials sealed with K1.
      const first = await start({ HUB_ENCRYPTION_KEY: K1 });
      await first.admin(`mutation { createTenant(input: { id: "rt", name: "RT" }) { id } }`);
      await first.admin(`mutation { createSystem(input: { id: "r-bearer", name: "B", mode: EXCLUSIVE }) { id } }`);
      await first.admin(`mutation { createSystem(input: { id: "r-header", name: "H", mode: EXCLUSIVE }) { id } }`);
      await first.admin(`mutation { createSystem(input: { id: "r-shared", name: "S", mode: SHARED, sharedBaseUrl: "${up.url}/shared" }) { id } }`);
      await first.admin(`mutation { createSystem(input: { id: "r-none", name: "N", mode: EXCLUSIVE }) { id } }`);
      await first.admin(`mutation { bindSystem(input: { tenantId: "rt", systemId: "r-bearer", baseUrl: "${up.url}/b", credential: { kind: BEARER, token: "${TOKENS['r-bearer']}" } }) { baseUrl } }`);
      await first.admin(
        `mutation { bindSystem(input: { tenantId: "rt", systemId: "r-header", baseUrl: "${up.url}/h", credential: { kind: HEADER, headerName: "X-Key", token: "${TOKENS['r-header']}" } }) { baseUrl } }`,
      );
      await first.admin(`mutation { bindSystem(input: { tenantId: "rt", systemId: "r-shared", credential: { kind: BEARER, token: "${TOKENS['r-shared']}" } }) { baseUrl } }`);
      await first.admin(`mutation { bindSystem(input: { tenantId: "rt", systemId: "r-none", baseUrl: "${up.url}/n" }) { baseUrl } }`);
      callerKey = await createCallerWithGrant(first, { id: 'rot-caller', tenantId: 'rt', grants: [{ tenantId: 'rt' }] });
      expect(await invokeAll(first)).toEqual(allOk);
      const sealedWithK1 = await credentialRows();
      expect(sealedWithK1.map((r) => r.keyId)).toEqual([keyIdOf(K1), keyIdOf(K1), keyIdOf(K1)]);
      await stop(first);

      // 2. Only K2: the K1 rows cannot be opened, and nothing is sent with a wrong token.
      const k2only = await start({ HUB_ENCRYPTION_KEY: K2 });
      expect(await invokeAll(k2only)).toEqual({ 'r-bearer': 'INTERNAL_SERVER_ERROR', 'r-header': 'INTERNAL_SERVER_ERROR', 'r-shared': 'INTERNAL_SERVER_ERROR', 'r-none': 'ok' });
      await stop(k2only);

      // 3. K2 with K1 as a previous key: old rows open; the rotation re-seals all of them with K2.
      const second = await start({ HUB_ENCRYPTION_KEY: K2, HUB_ENCRYPTION_PREVIOUS_KEYS: K1 });
      expect(await invokeAll(second)).toEqual(allOk);
      const forbidden = await second.gql(`mutation { rotateEncryptionKey { rotated keyId } }`, undefined, { key: callerKey });
      expect(codeOf(forbidden)).toBe('FORBIDDEN');
      expect((await credentialRows()).map((r) => r.keyId)).toEqual([keyIdOf(K1), keyIdOf(K1), keyIdOf(K1)]);
      const rotation = await second.admin(`mutation { rotateEncryptionKey { rotated keyId } }`);
      expect(rotation.rotateEncryptionKey).toEqual({ rotated: 3, keyId: keyIdOf(K2) });
      const sealedWithK2 = await credentialRows();
      expect(sealedWithK2.map((r) => r.keyId)).toEqual([keyIdOf(K2), keyIdOf(K2), keyIdOf(K2)]);
      for (const [i, row] of sealedWithK2.entries()) expect(row.ciphertext).not.toBe(sealedWithK1[i]!.ciphertext);
      expect((await second.admin(`mutation { rotateEncryptionKey { rotated keyId } }`)).rotateEncryptionKey).toEqual({ rotated: 0, keyId: keyIdOf(K2) });
      expect(await invokeAll(second)).toEqual(allOk);
      await stop(second);

      // 4. K2 alone now opens everything; K1 alone opens nothing any more.
      const third = await start({ HUB_ENCRYPTION_KEY: K2 });
      expect(await invokeAll(third)).toEqual(allOk);
      await stop(third);
      const old = await start({ HUB_ENCRYPTION_KEY: K1 });
      expect(await invokeAll(old)).toEqual({ 'r-bearer': 'INTERNAL_SERVER_ERROR', 'r-header': 'INTERNAL_SERVER_ERROR', 'r-shared': 'INTERNAL_SERVER_ERROR', 'r-none': 'ok' });
      await stop(old);

      // Neither the tokens nor the keys themselves were ever logged.
      const text = logs.join('\n');
      for (const secret of [...Object.values(TOKENS), K1, K2, adminKey, callerKey]) expect(text).not.toContain(secret);
    } finally {
      for (const h of hubs) await h.close().catch(() => {});
      await db.drop();
      await up.close();
    }
  }, 180_000);
});

// The rotation reads every sealed row, then writes each one back re-sealed. A credential changed
// in between must survive: written back blindly, the old secret would return (to a new address).
describe.runIf(testDatabases().includes('postgres'))('encryption key rotation on postgres, a credential changed meanwhile', () => {
  it('keeps the credential set while the rotation ran', async () => {
    const K1 = randomBytes(32).toString('base64');
    const K2 = randomBytes(32).toString('base64');
    const up = await startCanary();
    const db = await createTestDatabase('postgres');
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const hubs: TestHub[] = [];
    try {
      const first = await startTestHub('postgres', { db, env: { HUB_ENCRYPTION_KEY: K1 } });
      hubs.push(first);
      await first.admin(`mutation { createTenant(input: { id: "rt", name: "RT" }) { id } }`);
      await first.admin(`mutation { createSystem(input: { id: "r-b", name: "B", mode: EXCLUSIVE }) { id } }`);
      await first.admin(`mutation { bindSystem(input: { tenantId: "rt", systemId: "r-b", baseUrl: "${up.url}/b", credential: { kind: BEARER, token: "rot-old-SECRET" } }) { baseUrl } }`);
      const callerKey = await createCallerWithGrant(first, { id: 'rot-caller', tenantId: 'rt', grants: [{ tenantId: 'rt' }] });
      await first.close();
      const second = await startTestHub('postgres', { db, env: { HUB_ENCRYPTION_KEY: K2, HUB_ENCRYPTION_PREVIOUS_KEYS: K1 } });
      hubs.push(second);

      // The binding's row is held, so that the change waits first and the rotation's write after it.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "Binding" WHERE "tenantId" = 'rt' AND "systemId" = 'r-b' FOR UPDATE`);
      const changed = second.admin(`mutation { setCredential(tenantId: "rt", systemId: "r-b", credential: { kind: BEARER, token: "rot-new-SECRET" }) { credential { kind } } }`);
      await lockWaiters(db);
      const rotated = second.admin(`mutation { rotateEncryptionKey { rotated keyId } }`);
      await lockWaiters(db, { count: 2 });
      await holder.query('ROLLBACK');
      await changed;
      await rotated;

      const res = await second.gql(INVOKE_QUERY, { t: 'rt', s: 'r-b', p: { path: '/after' } }, { key: callerKey });
      expect(res.body.errors).toBeUndefined();
      expect(up.requests.at(-1)!.headers.authorization).toBe('Bearer rot-new-SECRET');
    } finally {
      await holder.end();
      for (const h of hubs) await h.close().catch(() => {});
      await db.drop();
      await up.close();
    }
  }, 60_000);
});

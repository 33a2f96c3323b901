// Attack suite, API keys (OWASP API2:2023, broken authentication): what an issued key looks like,
// what the database keeps of it, rotation, revocation and expiry taking effect on the next request,
// near-miss keys, lastUsedAt without a write per request, and the failed-authentication throttle
// per client address. A canary upstream must never be reached with a refused key.
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientFrom, issueKey, waitFor, type AddressedClient } from '../helpers/attack-kit.js';
import { testDatabases } from '../helpers/databases.js';
import { expectData, expectError } from '../helpers/registry-snapshot.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from '../helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from '../helpers/test-hub.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const KEY_SHAPE = /^thub_[0-9A-Za-z]{43}$/;
const VIEWER = `{ viewer { role caller { id } } }`;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function expect401(res: GqlResponse) {
  expectError(res, 'UNAUTHENTICATED', { status: 401 });
  expect(res.body.data ?? null).toBeNull();
}

/** One character of the key replaced by another base62 character (the key stays well-formed). */
function swapChar(key: string, index: number): string {
  const c = key[index]!;
  const other = c === 'A' ? 'B' : 'A';
  return key.slice(0, index) + other + key.slice(index + 1);
}

describe.each(testDatabases())('API keys on %s', (kind) => {
  let hub: TestHub;
  let canary: Upstream;
  const issued: string[] = []; // every key this suite saw, searched for in tables and logs

  beforeAll(async () => {
    canary = await startUpstream();
    // The near-miss cases below send many bad keys from 127.0.0.1: the throttle is tested on its own hub.
    hub = await startTestHub(kind, { env: { HUB_AUTH_FAILURES_PER_MINUTE: '100000' } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/acme-crm`, token: 'acme-crm-token' });
    issued.push(hub.adminKey);
  });
  afterAll(async () => {
    await hub?.close();
    await canary?.close();
  });

  async function newCaller(id: string): Promise<string> {
    const key = await createCallerWithGrant(hub, { id, tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
    issued.push(key);
    return key;
  }
  async function issue(callerId: string, expiresAt?: string) {
    const k = await issueKey(hub, callerId, expiresAt);
    issued.push(k.apiKey);
    return k;
  }
  const viewerId = async (key: string) => expectData(await hub.gql(VIEWER, {}, { key })).viewer.caller.id as string;
  const invoke = (key: string, path: string) => hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path } }, { key });

  // -----------------------------------------------------------------------------------------------
  describe('issued keys', () => {
    it('look like thub_ + 43 base62 characters, are all different, and use the whole alphabet', async () => {
      const keys = [await newCaller('k-shape')];
      for (let i = 0; i < 19; i++) keys.push((await issue('k-shape')).apiKey);
      for (const k of keys) expect(k).toMatch(KEY_SHAPE);
      expect(new Set(keys).size).toBe(keys.length);
      expect(new Set(keys.map((k) => k.slice(0, 13))).size).toBe(keys.length);
      // 20 keys = 860 random characters: a 62-letter alphabet shows (almost) every letter; a key
      // made from hex, a timestamp or a counter does not.
      const letters = new Set(keys.flatMap((k) => [...k.slice(5)]));
      expect(letters.size).toBeGreaterThanOrEqual(55);
    });

    it('are stored only as their SHA-256 hex: the key text is in no row of any table', async () => {
      const key = await newCaller('k-stored');
      const second = (await issue('k-stored')).apiKey;
      const rows = await hub.db.query<{ j: string }>(`SELECT row_to_json(k)::text AS j FROM "ApiKey" k`);
      for (const k of [key, second, hub.adminKey]) {
        const withHash = rows.filter((r) => r.j.includes(`"${sha256(k)}"`));
        expect(withHash, `exactly one ApiKey row holds the hash of ${k.slice(0, 13)}…`).toHaveLength(1);
      }
      const [row] = await hub.db.query<{ hash: string; prefix: string }>(`SELECT hash, prefix FROM "ApiKey" WHERE hash = $1`, [sha256(key)]);
      expect(row).toEqual({ hash: sha256(key), prefix: key.slice(0, 13) });
      // No table holds any key, nor its secret part after the prefix.
      const tables = await hub.db.query<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`);
      expect(tables.map((t) => t.name)).toContain('ApiKey');
      for (const { name } of tables) {
        const dump = (await hub.db.query<{ j: string }>(`SELECT row_to_json(t)::text AS j FROM "${name}" t`)).map((r) => r.j).join('\n');
        for (const k of issued) {
          expect(dump.includes(k), `key ${k.slice(0, 13)}… in table ${name}`).toBe(false);
          expect(dump.includes(k.slice(13)), `secret part of ${k.slice(0, 13)}… in table ${name}`).toBe(false);
        }
      }
    });

    it('show a prefix equal to the first 13 characters of the key, wherever the key is listed', async () => {
      const key = await newCaller('k-prefix');
      const extra = await issue('k-prefix');
      expect(extra.key.prefix).toBe(extra.apiKey.slice(0, 13));
      const listed = (await hub.admin(`{ caller(id: "k-prefix") { apiKeys { id prefix } } }`)).caller.apiKeys as { id: string; prefix: string }[];
      expect(listed.map((k) => k.prefix).sort()).toEqual([key.slice(0, 13), extra.apiKey.slice(0, 13)].sort());
      expect(JSON.stringify(listed)).not.toContain(key.slice(13));
      expect(JSON.stringify(listed)).not.toContain(extra.apiKey.slice(13));
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('rotation, revocation and expiry', () => {
    it('several keys of one caller are active at once, each for the same caller', async () => {
      const keys = [await newCaller('k-multi'), (await issue('k-multi')).apiKey, (await issue('k-multi')).apiKey];
      const before = canary.requests.length;
      for (const [i, key] of keys.entries()) {
        expect(await viewerId(key)).toBe('k-multi');
        expect(expectData(await invoke(key, `/multi/${i}`)).invoke.status).toBe(200);
      }
      expect(canary.requests.slice(before).map((r) => r.url)).toEqual(['/acme-crm/multi/0', '/acme-crm/multi/1', '/acme-crm/multi/2']);
      const listed = (await hub.admin(`{ caller(id: "k-multi") { apiKeys { revokedAt } } }`)).caller.apiKeys as { revokedAt: string | null }[];
      expect(listed).toHaveLength(3);
      expect(listed.every((k) => k.revokedAt === null)).toBe(true);
    });

    it('revoking one key refuses only that key, from the next request on', async () => {
      const keys = [await newCaller('k-revoke'), (await issue('k-revoke')).apiKey, (await issue('k-revoke')).apiKey];
      for (const key of keys) expect(await viewerId(key)).toBe('k-revoke');
      const listed = (await hub.admin(`{ caller(id: "k-revoke") { apiKeys { id prefix } } }`)).caller.apiKeys as { id: string; prefix: string }[];
      const middle = listed.find((k) => k.prefix === keys[1]!.slice(0, 13))!;
      const revoked = await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`, { id: middle.id });
      expect(revoked.revokeApiKey.revokedAt).toBeTruthy();
      const before = canary.requests.length;
      expect401(await hub.gql(VIEWER, {}, { key: keys[1]! }));
      expect401(await invoke(keys[1]!, '/revoked'));
      expect(canary.requests.length).toBe(before);
      expect(await viewerId(keys[0]!)).toBe('k-revoke');
      expect(await viewerId(keys[2]!)).toBe('k-revoke');
      // Revoking again changes nothing, and does not bring the key back.
      const again = await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`, { id: middle.id });
      expect(again.revokeApiKey.revokedAt).toBe(revoked.revokeApiKey.revokedAt);
      expect401(await hub.gql(VIEWER, {}, { key: keys[1]! }));
    });

    it('refuses an expired key once its expiry has passed (and refuses to issue one already expired)', async () => {
      const first = await newCaller('k-expiry');
      const past = await hub.gql(`mutation { issueApiKey(callerId: "k-expiry", expiresAt: "${new Date(Date.now() - 1000).toISOString()}") { apiKey } }`);
      expectError(past, 'BAD_USER_INPUT');
      const expiresAt = new Date(Date.now() + 1500).toISOString();
      const { apiKey, key } = await issue('k-expiry', expiresAt);
      expect(new Date(key.expiresAt!).getTime()).toBe(new Date(expiresAt).getTime());
      expect(await viewerId(apiKey)).toBe('k-expiry');
      await waitFor('the key to expire', () => Date.now() > new Date(expiresAt).getTime() + 100, 5000);
      const before = canary.requests.length;
      expect401(await hub.gql(VIEWER, {}, { key: apiKey }));
      expect401(await invoke(apiKey, '/expired'));
      expect(canary.requests.length).toBe(before);
      expect(await viewerId(first)).toBe('k-expiry');
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('near-miss keys', () => {
    // Latin letters and the Cyrillic letters drawn the same.
    const CYRILLIC_TWIN: Record<string, string> = {
      a: '\u0430', c: '\u0441', e: '\u0435', o: '\u043e', p: '\u0440', x: '\u0445', y: '\u0443',
      A: '\u0410', B: '\u0412', C: '\u0421', E: '\u0415', H: '\u041d', K: '\u041a', M: '\u041c',
      O: '\u041e', P: '\u0420', T: '\u0422', X: '\u0425',
    };
    const LOOK_ALIKE_LETTERS = new RegExp(`[${Object.keys(CYRILLIC_TWIN).join('')}]`);
    let key: string;
    beforeAll(async () => {
      key = await newCaller('k-near');
      // Keys are random: one without a letter that has a Cyrillic twin (~1 in 2.5 million) is reissued.
      while (!LOOK_ALIKE_LETTERS.test(key.slice(5))) key = (await issue('k-near')).apiKey;
    });
    afterEach(async () => {
      // The real key still works: the refusals are about the variant, not a broken caller.
      expect(await viewerId(key)).toBe('k-near');
    });

    it.each<[string, (k: string) => string]>([
      ['the last character changed', (k) => swapChar(k, k.length - 1)],
      ['the first secret character changed', (k) => swapChar(k, 5)],
      ['a middle character changed', (k) => swapChar(k, 27)],
      ['the case of one letter flipped', (k) => {
        const i = [...k].findIndex((c, n) => n >= 5 && /[A-Za-z]/.test(c));
        const c = k[i]!;
        return k.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + k.slice(i + 1);
      }],
      ['one character appended', (k) => `${k}A`],
      ['the last character dropped', (k) => k.slice(0, -1)],
      ['the prefix in upper case', (k) => `THUB_${k.slice(5)}`],
      ['another separator after the prefix', (k) => `thub-${k.slice(5)}`],
      ['the prefix alone', (k) => k.slice(0, 13)],
      ['a zero-width space appended', (k) => `${k}\u200b`],
      ['a Cyrillic look-alike for one letter', (k) => k.slice(0, 5) + k.slice(5).replace(LOOK_ALIKE_LETTERS, (c) => CYRILLIC_TWIN[c]!)],
      ['the SHA-256 of the key (what the database holds)', (k) => sha256(k)],
      ['the key twice', (k) => `${k}${k}`],
    ])('refuses the key with %s, sending nothing upstream', async (_, variant) => {
      const bad = variant(key);
      expect(bad).not.toBe(key);
      const before = canary.requests.length;
      // Non-ASCII header values cannot be sent by fetch as they are: send their UTF-8 bytes.
      const header = `Bearer ${Buffer.from(bad, 'utf8').toString('latin1')}`;
      expect401(await hub.gql(VIEWER, {}, { key: null, headers: { authorization: header } }));
      expect401(await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/near' } }, { key: null, headers: { authorization: header } }));
      expect(canary.requests.length).toBe(before);
    });
  });

  // -----------------------------------------------------------------------------------------------
  describe('lastUsedAt', () => {
    it('is set after use, but 30 authenticated requests cause at most one UPDATE of "ApiKey"', async () => {
      await newCaller('k-used');
      const { apiKey, key } = await issue('k-used');
      expect(key.lastUsedAt).toBeNull();
      const lastUsed = async () => (await hub.db.query<{ t: Date | string | null }>(`SELECT "lastUsedAt" AS t FROM "ApiKey" WHERE id = $1`, [key.id]))[0]!.t;
      expect(await lastUsed()).toBeNull();

      // Only this key is used while the SQL is observed (direct SQL below is not Prisma's).
      const statements: string[] = [];
      const stop = hub.hub.db.onQuery((sql) => statements.push(sql));
      const started = Date.now();
      try {
        for (let i = 0; i < 30; i++) {
          const res = i % 3 === 0 ? await invoke(apiKey, `/used/${i}`) : await hub.gql(VIEWER, {}, { key: apiKey });
          expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
        }
        const at = await waitFor('lastUsedAt to be written', lastUsed, 5000);
        expect(new Date(at).getTime()).toBeGreaterThanOrEqual(started - 1000);
        expect(new Date(at).getTime()).toBeLessThanOrEqual(Date.now() + 1000);
        await new Promise((r) => setTimeout(r, 200)); // let any straggling write show up
      } finally {
        stop();
      }
      const updates = statements.filter((s) => /^\s*UPDATE\s+("public"\.)?"ApiKey"/i.test(s));
      // (exactly one: the observer does see the write; warm authentications may run no SQL at all)
      expect(updates, updates.join('\n')).toHaveLength(1);
      const listed = (await hub.admin(`{ caller(id: "k-used") { apiKeys { id lastUsedAt } } }`)).caller.apiKeys as { id: string; lastUsedAt: string | null }[];
      expect(listed.find((k) => k.id === key.id)!.lastUsedAt).not.toBeNull();
    });
  });

  // -----------------------------------------------------------------------------------------------
  it('no key used in this suite appears in any log line (debug logging)', async () => {
    expect(issued.length).toBeGreaterThan(20);
    const logs = hub.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const k of issued) {
      expect(logs.includes(k.slice(13)), `key ${k.slice(0, 13)}… in the log`).toBe(false);
    }
  });
});

// -------------------------------------------------------------------------------------------------
// The failed-authentication throttle, per client address: connections from 127.0.0.1 (the admin's,
// through hub.gql), 127.0.0.2 (a well-behaved client) and 127.0.0.3+ (attackers).
describe.each(testDatabases())('failed-authentication throttle on %s', (kind) => {
  let hub: TestHub;
  let canary: Upstream;
  let validKey: string;
  const clients: AddressedClient[] = [];
  const from = (address: string) => {
    const c = clientFrom(hub, address);
    clients.push(c);
    return c;
  };
  const badKey = (i: number) => `thub_${String(i).padStart(43, 'x')}`;

  beforeAll(async () => {
    canary = await startUpstream();
    hub = await startTestHub(kind, { env: { HUB_AUTH_FAILURES_PER_MINUTE: '5' } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/acme-crm` });
    validKey = await createCallerWithGrant(hub, { id: 'throttled', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await hub?.close();
    await canary?.close();
  });

  it('the client addresses really differ (control for the cases below)', async () => {
    for (const address of ['127.0.0.2', '127.0.0.3']) expect401(await from(address).gql(VIEWER, {}, { key: null }));
    const clientsSeen = hub.logs.filter((l) => l.includes('authentication failed')).map((l) => JSON.parse(l).client as string);
    expect(clientsSeen).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  it('after 5 failures from one address, even a valid key from it gets 429 RATE_LIMITED; other addresses go on', async () => {
    const attacker = from('127.0.0.4');
    const neighbour = from('127.0.0.5');
    for (let i = 0; i < 5; i++) expect401(await attacker.gql(VIEWER, {}, { key: badKey(i) }));
    const before = canary.requests.length;
    const blocked = await attacker.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/blocked' } }, { key: validKey });
    expect(blocked.status, JSON.stringify(blocked.body)).toBe(429);
    expect(blocked.body.data ?? null).toBeNull();
    const error = blocked.body.errors![0]!;
    expect(error.extensions?.code).toBe('RATE_LIMITED');
    expect(error.extensions?.retryAfterMs).toBeGreaterThan(0);
    expect(error.extensions?.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(canary.requests.length).toBe(before);
    // Another address authenticates, invokes, and has its own count of failures.
    expect(expectData(await neighbour.gql(VIEWER, {}, { key: validKey })).viewer.caller.id).toBe('throttled');
    expect(expectData(await neighbour.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/neighbour' } }, { key: validKey })).invoke.status).toBe(200);
    expect401(await neighbour.gql(VIEWER, {}, { key: badKey(99) }));
    expect(canary.requests.slice(before).map((r) => r.url)).toEqual(['/acme-crm/neighbour']);
    // The admin on 127.0.0.1 is untouched too.
    expect(expectData(await hub.gql(VIEWER)).viewer.role).toBe('ADMIN');
  });

  it('a blocked address stays blocked whatever it sends, without touching the database', async () => {
    const attacker = from('127.0.0.6');
    for (let i = 0; i < 5; i++) expect401(await attacker.gql(VIEWER, {}, { key: badKey(i) }));
    const statements: string[] = [];
    const stop = hub.hub.db.onQuery((sql) => statements.push(sql));
    // Let writes still under way from earlier requests finish: 200 ms of quiet.
    for (let seen = -1; seen !== statements.length; ) {
      seen = statements.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    statements.length = 0;
    const attempts: [string, () => Promise<GqlResponse>][] = [
      ['the admin key', () => attacker.gql(VIEWER, {}, { key: hub.adminKey })],
      ['no key', () => attacker.gql(VIEWER, {}, { key: null })],
      ['a spoofed X-Forwarded-For', () => attacker.gql(VIEWER, {}, { key: validKey, headers: { 'x-forwarded-for': '10.9.8.7', 'x-real-ip': '10.9.8.7', forwarded: 'for=10.9.8.7' } })],
      ['another bad key', () => attacker.gql(VIEWER, {}, { key: badKey(42) })],
    ];
    try {
      for (const [what, send] of attempts) {
        const res = await send();
        expect(res.status, what).toBe(429);
        expect(res.body.errors?.[0]?.extensions?.code, what).toBe('RATE_LIMITED');
      }
    } finally {
      stop();
    }
    expect(statements, 'a throttled attempt must not cost a key lookup').toEqual([]);
  });

  it('counts failures only: successes do not hide them, and the limit is exactly 5', async () => {
    const client = from('127.0.0.7');
    for (let i = 0; i < 10; i++) expectData(await client.gql(VIEWER, {}, { key: validKey }));
    for (let i = 0; i < 4; i++) expect401(await client.gql(VIEWER, {}, { key: badKey(i) }));
    expectData(await client.gql(VIEWER, {}, { key: validKey })); // 4 failures: still allowed
    expect401(await client.gql(VIEWER, {}, { key: badKey(4) })); // the 5th failure is still answered 401
    const res = await client.gql(VIEWER, {}, { key: validKey });
    expect(res.status).toBe(429);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  });
});

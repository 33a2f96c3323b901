// params.idempotencyKey: the first call runs and its answer is kept (encrypted); a repeat from the
// same caller is answered from it without a second upstream call, also by another hub process;
// a repeat with other parameters is refused; "try again" answers and hub errors are not kept.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, seedExclusive } from './helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { echo, startUpstream, type Upstream } from './helpers/upstream.js';

const RESULT = '{ status ok data requestId replayed }';
const MUTATION = `mutation($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) ${RESULT} }`;
const QUERY = `query($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) ${RESULT} }`;

interface Result {
  status: number;
  ok: boolean;
  data: any;
  requestId: string;
  replayed: boolean;
}

/** Upstream requests that carried this Idempotency-Key. */
const sentWith = (u: Upstream, key: string) => u.requests.filter((r) => r.headers['idempotency-key'] === key);

const code = (res: GqlResponse) => res.body.errors?.[0]?.extensions?.code;

/** Waits (bounded) until check() holds. */
async function eventually(check: () => Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(25);
  }
}

describe.each(testDatabases())('idempotency keys on %s', (kind) => {
  let hub: TestHub;
  let up: Upstream;
  let callerKey: string;
  let otherKey: string;
  let narrowKey: string;

  const invoke = async (p: Record<string, unknown>, o: { key?: string; t?: string; on?: TestHub; query?: boolean } = {}) =>
    (o.on ?? hub).gql<{ invoke: Result }>(o.query ? QUERY : MUTATION, { t: o.t ?? 'acme', s: 'crm', p }, { key: o.key ?? callerKey });
  const ok = async (...args: Parameters<typeof invoke>): Promise<Result> => {
    const res = await invoke(...args);
    expect(res.body.errors).toBeUndefined();
    return res.body.data!.invoke;
  };

  beforeAll(async () => {
    up = await startUpstream();
    up.route('/slow', async (req, res) => {
      await sleep(300);
      echo(req, res);
    });
    up.route('/boom', (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('upstream broke');
    });
    up.route('/busy', (_req, res) => {
      res.writeHead(429, { 'retry-after': '1' });
      res.end();
    });
    up.route('/missing', (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"no such thing"}');
    });
    // One attempt per call, so that upstream counts are per invoke (a keyed call is also retried:
    // test/resilience.test.ts).
    hub = await startTestHub(kind, { env: { HUB_RETRY_MAX: '0' } });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: up.url, token: 'acme-token' });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: up.url, token: 'globex-token' });
    // a binding whose deployment refuses connections: a hub error, not an answer
    await seedExclusive(hub, { tenantId: 'initech', systemId: 'crm', baseUrl: 'http://127.0.0.1:1' });
    callerKey = await createCallerWithGrant(hub, { id: 'portal', grants: [{ tenantId: 'acme' }, { tenantId: 'globex' }, { tenantId: 'initech' }] });
    otherKey = await createCallerWithGrant(hub, { id: 'other-portal', grants: [{ tenantId: 'acme' }] });
    narrowKey = await createCallerWithGrant(hub, { id: 'narrow', grants: [{ tenantId: 'acme', pathPrefix: '/public' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  it('answers a repeat from the stored result: one upstream request, carrying Idempotency-Key', async () => {
    const p = { method: 'POST', path: '/orders', body: { item: 'widget', n: 2 }, idempotencyKey: 'order-1' };
    const first = await ok(p);
    expect(first).toMatchObject({ status: 200, ok: true, replayed: false });
    const second = await ok(p);
    expect(second.replayed).toBe(true);
    expect({ ...second, replayed: false }).toEqual(first);
    const sent = sentWith(up, 'order-1');
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers['x-request-id']).toBe(first.requestId);
    expect(JSON.parse(sent[0]!.body)).toEqual({ item: 'widget', n: 2 });
    // Each call, the replay included, leaves its invocation record.
    await hub.hub.audit.flush();
    await eventually(async () => (await hub.db.query(`SELECT 1 FROM "Invocation" WHERE "requestId" = $1`, [first.requestId])).length === 2);
  });

  it('replays Query.invoke too', async () => {
    const p = { path: '/patients/1', idempotencyKey: 'read-1' };
    expect((await ok(p, { query: true })).replayed).toBe(false);
    expect((await ok(p, { query: true })).replayed).toBe(true);
    expect(sentWith(up, 'read-1')).toHaveLength(1);
  });

  it('refuses the key with other parameters (body, path, query, headers, method, tenant) and sends nothing', async () => {
    const p = { method: 'POST', path: '/orders', body: { item: 'gadget' }, idempotencyKey: 'order-2' };
    await ok(p);
    const variants: [Record<string, unknown>, string?][] = [
      [{ ...p, body: { item: 'gizmo' } }],
      [{ ...p, path: '/orders/2' }],
      [{ ...p, query: { dry: true } }],
      [{ ...p, headers: { 'x-note': 'hi' } }],
      [{ ...p, method: 'PUT' }],
      [p, 'globex'],
    ];
    for (const [params, t] of variants) {
      const res = await invoke(params, { t });
      expect(code(res)).toBe('BAD_USER_INPUT');
      expect(res.body.errors![0]!.message).toMatch(/idempotencyKey/);
    }
    expect(sentWith(up, 'order-2')).toHaveLength(1);
    // the original still replays
    expect((await ok(p)).replayed).toBe(true);
  });

  it('keeps keys apart per caller', async () => {
    const p = { method: 'POST', path: '/orders', body: { item: 'x' }, idempotencyKey: 'shared-key' };
    const a = await ok(p);
    const b = await ok(p, { key: otherKey });
    expect(a.replayed).toBe(false);
    expect(b.replayed).toBe(false);
    expect(b.requestId).not.toBe(a.requestId);
    expect(sentWith(up, 'shared-key')).toHaveLength(2);
    expect((await ok(p, { key: otherKey })).requestId).toBe(b.requestId);
    expect((await ok(p)).requestId).toBe(a.requestId);
    expect(sentWith(up, 'shared-key')).toHaveLength(2);
  });

  it('sends concurrent duplicates upstream once; every one gets the answer', async () => {
    const p = { method: 'POST', path: '/slow/pay', body: { amount: 5 }, idempotencyKey: 'pay-1' };
    const results = await Promise.all(Array.from({ length: 20 }, () => ok(p)));
    expect(sentWith(up, 'pay-1')).toHaveLength(1);
    expect(new Set(results.map((r) => r.requestId)).size).toBe(1);
    expect(results.every((r) => r.status === 200 && r.data.body === JSON.stringify({ amount: 5 }))).toBe(true);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
  });

  it('keeps client errors (4xx) but not 5xx, 429 or hub errors: those run again', async () => {
    const missing = { method: 'POST', path: '/missing', idempotencyKey: 'k-404' };
    expect((await ok(missing)).status).toBe(404);
    expect((await ok(missing)).replayed).toBe(true);
    expect(sentWith(up, 'k-404')).toHaveLength(1);

    for (const [path, status] of [['/boom', 500], ['/busy', 429]] as const) {
      const p = { method: 'POST', path, idempotencyKey: `k-${status}` };
      const first = await ok(p);
      const again = await ok(p);
      expect([first.status, again.status]).toEqual([status, status]);
      expect(again.replayed).toBe(false);
      expect(sentWith(up, `k-${status}`)).toHaveLength(2);
    }

    const down = { method: 'POST', path: '/x', idempotencyKey: 'k-down' };
    expect(code(await invoke(down, { t: 'initech' }))).toBe('UPSTREAM_UNREACHABLE');
    expect(await hub.db.query(`SELECT 1 FROM "IdempotencyRecord" WHERE "key" = 'k-down'`)).toHaveLength(0);
    // the key is free again: the same key with other parameters is no longer "other parameters"
    expect((await ok({ ...down, path: '/y' })).replayed).toBe(false);
  });

  it('waits for a duplicate in flight, bounded; a claim left by a dead process is taken over after its lease', async () => {
    await hub.admin(`mutation { createSystem(input: { id: "quick", name: "quick", mode: EXCLUSIVE, timeoutMs: 1000 }) { id } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "quick", baseUrl: "${up.url}" }) { baseUrl } }`);
    const send = () => hub.gql(MUTATION, { t: 'acme', s: 'quick', p: { method: 'POST', path: '/orders', idempotencyKey: 'stuck-1' } }, { key: callerKey });
    expect((await send()).body.data.invoke.replayed).toBe(false);
    // As if a hub had claimed the key and died mid-call: no answer, lease still running.
    await hub.db.query(`UPDATE "IdempotencyRecord" SET "ciphertext" = NULL, "keyId" = NULL, "expiresAt" = now() + interval '1 hour' WHERE "key" = 'stuck-1'`);
    const waited = await send();
    expect(code(waited)).toBe('UPSTREAM_TIMEOUT');
    expect(waited.body.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(60_000);
    expect(sentWith(up, 'stuck-1')).toHaveLength(1);
    // The lease ends: the next call runs (the called system sees the same Idempotency-Key again).
    await hub.db.query(`UPDATE "IdempotencyRecord" SET "expiresAt" = now() - interval '1 second' WHERE "key" = 'stuck-1'`);
    expect((await send()).body.data.invoke.replayed).toBe(false);
    expect(sentWith(up, 'stuck-1')).toHaveLength(2);
    expect((await send()).body.data.invoke.replayed).toBe(true);
  });

  it('stores nothing for a refused call', async () => {
    const p = { method: 'POST', path: '/private', idempotencyKey: 'refused-1' };
    expect(code(await invoke(p, { key: narrowKey }))).toBe('FORBIDDEN');
    expect(await hub.db.query(`SELECT 1 FROM "IdempotencyRecord" WHERE "key" = 'refused-1'`)).toHaveLength(0);
    expect(up.requests.filter((r) => r.url === '/private')).toHaveLength(0);
  });

  it('keeps the answer encrypted: the row holds no plaintext of it', async () => {
    const marker = 'plaintext-marker-7f3a9c';
    const r = await ok({ method: 'POST', path: `/notes/${marker}`, body: { text: marker }, idempotencyKey: 'secret-1' });
    expect(JSON.stringify(r.data)).toContain(marker);
    const rows = await hub.db.query<{ ciphertext: string; keyId: string; fingerprint: string }>(
      `SELECT "ciphertext", "keyId", "fingerprint" FROM "IdempotencyRecord" WHERE "callerId" = 'portal' AND "key" = 'secret-1'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.ciphertext).toMatch(/^v1:/);
    expect(rows[0]!.keyId).toBeTruthy();
    const row = JSON.stringify(rows[0]);
    expect(row).not.toContain(marker);
    expect(row).not.toContain(Buffer.from(marker).toString('base64').slice(0, 16));
    expect(row).not.toContain(r.requestId);
  });

  it('refuses invalid keys with BAD_USER_INPUT and sends nothing', async () => {
    const before = up.requests.length;
    for (const idempotencyKey of ['has space', 'x'.repeat(256), '', 'tab\there', 'é']) {
      const res = await invoke({ method: 'POST', path: '/orders', idempotencyKey });
      expect(code(res)).toBe('BAD_USER_INPUT');
    }
    expect(up.requests.length).toBe(before);
  });

  it('runs again once the stored answer has expired, and purges expired rows', async () => {
    // A TTL long enough for an immediate repeat on a busy machine, short enough to wait out.
    const short = await startTestHub(kind, { env: { HUB_IDEMPOTENCY_TTL_MS: '1500' } });
    try {
      await seedExclusive(short, { tenantId: 'acme', systemId: 'crm', baseUrl: up.url });
      const key = await createCallerWithGrant(short, { id: 'portal', grants: [{ tenantId: 'acme' }] });
      const p = { method: 'POST', path: '/orders', body: { n: 1 }, idempotencyKey: 'ttl-1' };
      await ok({ ...p, idempotencyKey: 'ttl-0' }, { on: short, key });
      expect((await ok(p, { on: short, key })).replayed).toBe(false);
      expect((await ok(p, { on: short, key })).replayed).toBe(true);
      await sleep(1700);
      expect((await ok(p, { on: short, key })).replayed).toBe(false);
      expect(sentWith(up, 'ttl-1')).toHaveLength(2);
      // That call came more than a TTL after the last purge: it deleted the expired row of ttl-0.
      await eventually(async () => (await short.db.query(`SELECT 1 FROM "IdempotencyRecord" WHERE "key" = 'ttl-0'`)).length === 0);
      // Expired, the key is free even for other parameters.
      await sleep(1700);
      expect((await ok({ ...p, body: { n: 2 } }, { on: short, key })).replayed).toBe(false);
      expect(sentWith(up, 'ttl-1')).toHaveLength(3);
    } finally {
      await short.close();
    }
  });

  it.runIf(kind === 'postgres')('is answered from the store by a second hub process on the same database', async () => {
    const second = await startTestHub(kind, { db: hub.db, dataDir: hub.dataDir, env: { HUB_ADMIN_KEY: hub.adminKey } });
    try {
      const p = { method: 'POST', path: '/orders', body: { item: 'cross' }, idempotencyKey: 'cross-1' };
      const first = await ok(p);
      const replay = await ok(p, { on: second });
      expect(replay.replayed).toBe(true);
      expect(replay.requestId).toBe(first.requestId);
      expect(sentWith(up, 'cross-1')).toHaveLength(1);
      expect(code(await invoke({ ...p, body: { item: 'other' } }, { on: second }))).toBe('BAD_USER_INPUT');

      // Concurrent duplicates spread over both hubs: still one upstream request.
      const slow = { method: 'POST', path: '/slow/cross', body: { item: 'both' }, idempotencyKey: 'cross-2' };
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => ok(slow, { on: i % 2 ? second : hub })));
      expect(sentWith(up, 'cross-2')).toHaveLength(1);
      expect(new Set(results.map((r) => r.requestId)).size).toBe(1);
    } finally {
      await second.close();
    }
  });
});

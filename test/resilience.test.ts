// Resilience against misbehaving called systems, with real loopback servers: retries (safe calls
// only, Retry-After honoured, inside the deadline), circuit breakers per deployment, the bulkhead
// that caps calls in flight per deployment, W3C traceparent, and the metrics that show it all.
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type RecordedRequest, type Upstream } from './helpers/upstream.js';

const codeOf = (res: GqlResponse) => res.body.errors?.[0]?.extensions?.code as string | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function labelled(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Answers `failures` times with the scripted failure, then like the echo route. */
function failingTimes(failures: number, fail: (res: ServerResponse) => void) {
  let seen = 0;
  return (req: RecordedRequest, res: ServerResponse) => {
    if (seen++ < failures) return fail(res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, attempt: seen }));
  };
}

const hits = (u: Upstream, prefix: string) => u.requests.filter((r) => r.url.startsWith(prefix));

describe.each(testDatabases())('resilience on %s', (kind) => {
  let hub: TestHub;
  let key: string;
  // Each upstream server is its own origin, so its own deployment for breakers and the bulkhead.
  let breaking: Upstream;
  let healthy: Upstream;
  let hanging: Upstream;
  let shared: Upstream;

  const invoke = (systemId: string, p: Record<string, unknown>, tenant = 'acme', headers?: Record<string, string>) =>
    hub.gql(INVOKE_QUERY, { t: tenant, s: systemId, p }, { key, headers });
  const invokeMutation = (systemId: string, p: Record<string, unknown>) => hub.gql(INVOKE_MUTATION, { t: 'acme', s: systemId, p }, { key });

  // A deployment of its own for one test (its own origin, so its own breaker), timeoutMs 3 s.
  const extra: Upstream[] = [];
  let systems = 0;
  async function deployment(): Promise<{ upstream: Upstream; systemId: string }> {
    const upstream = await startUpstream();
    extra.push(upstream);
    const systemId = `retry-${++systems}`;
    await seedExclusive(hub, { tenantId: 'acme', systemId, baseUrl: upstream.url });
    await hub.admin(`mutation { updateSystem(id: "${systemId}", input: { timeoutMs: 3000 }) { id } }`);
    return { upstream, systemId };
  }

  beforeAll(async () => {
    [breaking, healthy, hanging, shared] = await Promise.all([startUpstream(), startUpstream(), startUpstream(), startUpstream()]);
    hub = await startTestHub(kind, {
      env: {
        HUB_RETRY_MAX: '2',
        HUB_RETRY_BASE_MS: '20',
        HUB_BREAKER_FAILURES: '3',
        HUB_BREAKER_OPEN_MS: '400',
        HUB_MAX_CONCURRENT_PER_DEPLOYMENT: '2',
      },
    });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'breaking', baseUrl: breaking.url });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'healthy', baseUrl: healthy.url });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'hanging', baseUrl: hanging.url });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'breaking-b', baseUrl: `${healthy.url}/globex` });
    await hub.admin(`mutation { timeouts: updateSystem(id: "hanging", input: { timeoutMs: 1500 }) { id } }`);
    await hub.admin(`mutation { createSystem(input: { id: "saas", name: "SaaS", mode: SHARED, sharedBaseUrl: "${shared.url}" }) { id } }`);
    await hub.admin(`mutation { createTenant(input: { id: "globex", name: "Globex" }) { id } }`).catch(() => {});
    for (const t of ['acme', 'globex']) await hub.admin(`mutation { bindSystem(input: { tenantId: "${t}", systemId: "saas" }) { baseUrl } }`);
    key = await createCallerWithGrant(hub, { id: 'resilient', grants: [{ tenantId: 'acme' }, { tenantId: 'globex' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await Promise.all([breaking, healthy, hanging, shared, ...extra].map((u) => u?.close()));
  });

  describe('retries', () => {
    it('retries a GET after 503 and 502 answers and returns the answer that succeeded', async () => {
      const { upstream: retrying, systemId } = await deployment();
      let n = 0;
      retrying.route('/flaky-5xx', failingTimes(2, (res) => {
        res.writeHead(n++ === 0 ? 503 : 502, { 'content-type': 'text/plain' });
        res.end('busy');
      }));
      const res = await invoke(systemId, { path: '/flaky-5xx' });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke).toMatchObject({ status: 200, data: { attempt: 3 } });
      expect(hits(retrying, '/flaky-5xx')).toHaveLength(3);
      // Every attempt carries the same X-Request-Id: the called system can tell a retry from a new call.
      const ids = new Set(hits(retrying, '/flaky-5xx').map((r) => r.headers['x-request-id']));
      expect(ids.size).toBe(1);
      expect(res.body.data.invoke.requestId).toBe([...ids][0]);
    });

    it('retries a GET whose connection was dropped before an answer', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/flaky-reset', failingTimes(1, (res) => void res.socket?.destroy()));
      const res = await invoke(systemId, { path: '/flaky-reset' });
      expect(res.body.data.invoke).toMatchObject({ status: 200, data: { attempt: 2 } });
      expect(hits(retrying, '/flaky-reset')).toHaveLength(2);
    });

    it('gives up after HUB_RETRY_MAX retries and returns the last answer as data', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/always-503', (_req, res) => {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"down":true}');
      });
      const res = await invoke(systemId, { path: '/always-503' });
      expect(res.body.data.invoke).toMatchObject({ status: 503, ok: false, data: { down: true } });
      expect(hits(retrying, '/always-503')).toHaveLength(3);
    });

    it('honours Retry-After on a 429 (delay-seconds)', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/limited', failingTimes(1, (res) => {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain' });
        res.end('slow down');
      }));
      const started = Date.now();
      const res = await invoke(systemId, { path: '/limited' });
      expect(res.body.data.invoke).toMatchObject({ status: 200, data: { attempt: 2 } });
      const [first, second] = hits(retrying, '/limited');
      expect(second).toBeDefined();
      // The second attempt was not sent before the second the system asked for had passed.
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      expect(first!.headers['x-request-id']).toBe(second!.headers['x-request-id']);
    });

    it('does not wait past the deadline: a Retry-After longer than the time left returns the 429 at once', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/limited-long', (_req, res) => {
        res.writeHead(429, { 'retry-after': '60' });
        res.end();
      });
      const started = Date.now();
      const res = await invoke(systemId, { path: '/limited-long' });
      expect(res.body.data.invoke).toMatchObject({ status: 429, ok: false });
      expect(res.body.data.invoke.headers['retry-after']).toBe('60');
      expect(hits(retrying, '/limited-long')).toHaveLength(1);
      expect(Date.now() - started).toBeLessThan(2500);
    });

    it('never retries a POST without an idempotency key', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/post-503', (_req, res) => {
        res.writeHead(503);
        res.end();
      });
      const res = await invokeMutation(systemId, { method: 'POST', path: '/post-503', body: { a: 1 } });
      expect(res.body.data.invoke).toMatchObject({ status: 503 });
      expect(hits(retrying, '/post-503')).toHaveLength(1);
      retrying.route('/post-reset', (_req, res) => void res.socket?.destroy());
      const reset = await invokeMutation(systemId, { method: 'PUT', path: '/post-reset', body: { a: 2 } });
      expect(codeOf(reset)).toBe('UPSTREAM_UNREACHABLE');
      expect(hits(retrying, '/post-reset')).toHaveLength(1);
    });

    it('retries a POST that carries an idempotency key, with the same key each time', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/idem-post', failingTimes(1, (res) => {
        res.writeHead(503);
        res.end();
      }));
      const res = await invokeMutation(systemId, { method: 'POST', path: '/idem-post', body: { a: 1 }, idempotencyKey: 'order-7' });
      expect(res.body.data.invoke).toMatchObject({ status: 200, data: { attempt: 2 } });
      const sent = hits(retrying, '/idem-post');
      expect(sent).toHaveLength(2);
      expect(sent.map((r) => r.headers['idempotency-key'])).toEqual(['order-7', 'order-7']);
    });

    it('does not retry a timeout: the deadline is spent', async () => {
      hanging.route('/hang-once', () => {});
      const started = Date.now();
      const res = await invoke('hanging', { path: '/hang-once' });
      expect(codeOf(res)).toBe('UPSTREAM_TIMEOUT');
      expect(hits(hanging, '/hang-once')).toHaveLength(1);
      expect(Date.now() - started).toBeLessThan(4000);
    });

    it('keeps every retry inside timeoutMs: a system that resets every connection is given up on in time', async () => {
      const { upstream: retrying, systemId } = await deployment();
      retrying.route('/always-reset', (_req, res) => void res.socket?.destroy());
      const res = await invoke(systemId, { path: '/always-reset' });
      expect(codeOf(res)).toBe('UPSTREAM_UNREACHABLE');
      expect(hits(retrying, '/always-reset').length).toBe(3);
    });
  });

  describe('circuit breaker', () => {
    it('opens after consecutive failures, answers CIRCUIT_OPEN without touching the deployment, probes half-open and closes', async () => {
      let healthyNow = false;
      breaking.route('/b', (req, res) => {
        if (healthyNow) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ url: req.url }));
        } else {
          res.writeHead(500);
          res.end();
        }
      });
      // 500 is not retried; three answers of 500 open the breaker (threshold 3).
      for (let i = 0; i < 3; i++) expect((await invoke('breaking', { path: `/b/${i}` })).body.data.invoke.status).toBe(500);
      expect(hits(breaking, '/b')).toHaveLength(3);
      const refused = await invoke('breaking', { path: '/b/refused' });
      expect(codeOf(refused)).toBe('CIRCUIT_OPEN');
      expect(refused.body.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
      expect(hits(breaking, '/b')).toHaveLength(3);
      const metrics = await (await fetch(`${hub.url}/metrics`)).text();
      expect(labelled(metrics, 'hub_circuit_breaker_state', `origin="${breaking.url}"`)).toBe(2);
      // Other deployments are not affected.
      expect((await invoke('healthy', { path: '/fine' })).body.data.invoke.status).toBe(200);

      // Half-open: one probe; it fails, so the breaker opens again.
      await sleep(450);
      expect((await invoke('breaking', { path: '/b/probe-1' })).body.data.invoke.status).toBe(500);
      expect(codeOf(await invoke('breaking', { path: '/b/after-probe-1' }))).toBe('CIRCUIT_OPEN');
      expect(hits(breaking, '/b')).toHaveLength(4);

      // The next probe succeeds and closes it.
      healthyNow = true;
      await sleep(450);
      expect((await invoke('breaking', { path: '/b/probe-2' })).body.data.invoke.status).toBe(200);
      expect((await invoke('breaking', { path: '/b/closed' })).body.data.invoke.status).toBe(200);
      expect(hits(breaking, '/b')).toHaveLength(6);
      const closed = await (await fetch(`${hub.url}/metrics`)).text();
      expect(labelled(closed, 'hub_circuit_breaker_state', `origin="${breaking.url}"`)).toBe(0);

      const { invocations } = await hub.admin(`{ invocations(first: 20, systemId: "breaking") { edges { node { path code status } } } }`);
      const refusedRecord = invocations.edges.map((e: any) => e.node).find((n: any) => n.path === '/b/refused');
      expect(refusedRecord).toMatchObject({ code: 'CIRCUIT_OPEN', status: null });
    });

    it('shares one breaker among all tenants of a SHARED deployment', async () => {
      shared.route('/s', (_req, res) => {
        res.writeHead(503);
        res.end();
      });
      // Safe calls to a 503 are retried: each call is 3 failed attempts, enough to open the breaker.
      expect((await invoke('saas', { path: '/s/1' }, 'acme')).body.data.invoke.status).toBe(503);
      const before = shared.requests.length;
      const other = await invoke('saas', { path: '/s/2' }, 'globex');
      expect(codeOf(other)).toBe('CIRCUIT_OPEN');
      expect(shared.requests.length).toBe(before);
    });

    it('gives each EXCLUSIVE deployment its own breaker', async () => {
      // breaking-b (globex) lives on another origin than the still-failing SHARED deployment.
      const res = await invoke('breaking-b', { path: '/ok' }, 'globex');
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
    });
  });

  describe('bulkhead', () => {
    it('refuses calls past the per-deployment cap at once, while other deployments go on', async () => {
      const release: (() => void)[] = [];
      hanging.route('/held', (_req, res) => {
        release.push(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"held":true}');
        });
      });
      const held = [invoke('hanging', { path: '/held/1' }), invoke('hanging', { path: '/held/2' })];
      for (let i = 0; i < 100 && release.length < 2; i++) await sleep(10);
      expect(release).toHaveLength(2);
      const started = Date.now();
      const third = await invoke('hanging', { path: '/held/3' });
      expect(codeOf(third)).toBe('CIRCUIT_OPEN');
      expect(third.body.errors![0]!.extensions!.reason).toBe('CONCURRENCY_LIMIT');
      expect(Date.now() - started).toBeLessThan(1000);
      expect(hits(hanging, '/held')).toHaveLength(2);
      const metrics = await (await fetch(`${hub.url}/metrics`)).text();
      expect(labelled(metrics, 'hub_upstream_in_flight', `origin="${hanging.url}"`)).toBe(2);
      // Another deployment is served meanwhile.
      expect((await invoke('healthy', { path: '/during' })).body.data.invoke.status).toBe(200);
      release.forEach((r) => r());
      for (const r of await Promise.all(held)) expect(r.body.data.invoke.data).toEqual({ held: true });
      // Slots are given back.
      expect((await invoke('hanging', { path: '/after' })).body.data.invoke.status).toBe(200);
    });
  });

  describe('memory bounded by the size cap', () => {
    it('stops reading an endless chunked answer at HUB_MAX_RESPONSE_BYTES', async () => {
      let written = 0;
      healthy.route('/endless', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 120);
        const pump = () => {
          while (!res.destroyed && written < 2 * 1024 ** 3) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
        };
        res.on('close', () => {});
        pump();
      });
      const res = await invoke('healthy', { path: '/endless' });
      expect(codeOf(res)).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
      // The default cap is 10 MiB: the hub read a little past it (socket buffers), never the whole answer.
      await sleep(100);
      expect(written).toBeLessThan(64 * 1024 ** 2);
    });
  });

  describe('traceparent', () => {
    it("continues the caller's trace with a new span per call", async () => {
      const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const res = await invoke('healthy', { path: '/traced' }, 'acme', { traceparent: incoming });
      const sent = res.body.data.invoke.data.headers.traceparent as string;
      expect(sent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
      expect(sent).not.toBe(incoming);
    });

    it('starts a new trace when the caller sends none or a malformed one', async () => {
      for (const headers of [undefined, { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }, { traceparent: 'junk' }]) {
        const res = await invoke('healthy', { path: '/untraced' }, 'acme', headers);
        const sent = res.body.data.invoke.data.headers.traceparent as string;
        expect(sent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        expect(sent).not.toMatch(/^00-0{32}/);
      }
    });
  });

  describe('metrics after known traffic', () => {
    it('counts invocations by tenant, system and outcome, retries and upstream latency', async () => {
      const scrape = async () => (await fetch(`${hub.url}/metrics`)).text();
      healthy.route('/m503', failingTimes(1, (res) => {
        res.writeHead(503);
        res.end();
      }));
      const before = await scrape();
      for (let i = 0; i < 4; i++) await invoke('healthy', { path: `/m/${i}` });
      await invoke('healthy', { path: '/m503' });
      await invoke('nope', { path: '/x' });
      const after = await scrape();
      const delta = (name: string, labels: string) => labelled(after, name, labels) - labelled(before, name, labels);
      expect(delta('hub_invocations_total', 'tenant="acme",system="healthy",outcome="ok"')).toBe(5);
      expect(delta('hub_invocations_total', 'tenant="",system="",outcome="NOT_FOUND"')).toBe(1);
      const count = (text: string, name: string) => Number(text.split('\n').find((l) => l.startsWith(name + ' '))?.split(' ')[1] ?? 0);
      expect(count(after, 'hub_upstream_retries_total') - count(before, 'hub_upstream_retries_total')).toBe(1);
      expect(count(after, 'hub_upstream_duration_seconds_count') - count(before, 'hub_upstream_duration_seconds_count')).toBe(6);
      expect(count(after, 'hub_invoke_duration_seconds_count') - count(before, 'hub_invoke_duration_seconds_count')).toBe(6);
      expect(after).toMatch(/^hub_audit_buffer_depth \d+$/m);
    });
  });
});

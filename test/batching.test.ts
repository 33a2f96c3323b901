// One GraphQL document, many invoke fields: identical Query.invoke calls are sent once, calls to a
// system with a batchPath are grouped per binding into JSON batches of at most batchMaxSize, and
// a failure in one field leaves the others their answers.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { batchEcho, startUpstream, type RecordedRequest, type Route, type Upstream } from './helpers/upstream.js';

const RESULT = '{ status ok headers data requestId }';

interface Field {
  alias: string;
  tenantId: string;
  systemId: string;
  /** the InvokeParams, e.g. { path: "/x" } (sent as a variable) */
  params: Record<string, unknown>;
}

/** One document with one invoke field per entry; each field's params go in as a variable. */
function document(op: 'query' | 'mutation', fields: Field[]): { query: string; variables: Record<string, unknown> } {
  const defs = fields.map((_, i) => `$p${i}: InvokeParams!`).join(', ');
  const body = fields.map((f, i) => `${f.alias}: invoke(tenantId: "${f.tenantId}", systemId: "${f.systemId}", params: $p${i}) ${RESULT}`);
  return { query: `${op}(${defs}) {\n  ${body.join('\n  ')}\n}`, variables: Object.fromEntries(fields.map((f, i) => [`p${i}`, f.params])) };
}

/** Sends the fields as one GraphQL request. */
const send = (hub: TestHub, op: 'query' | 'mutation', fields: Field[], key: string) => {
  const d = document(op, fields);
  return hub.gql(d.query, d.variables, { key });
};

interface BatchBody {
  requests: { id: string; method: string; url: string; headers: Record<string, string> }[];
}

/** Like batchEcho, and each part's body also says which tenant the batch request named. */
function tenantBatchEcho(req: RecordedRequest, res: ServerResponse) {
  const { requests } = JSON.parse(req.body) as BatchBody;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      responses: requests.map((r) => ({
        id: r.id,
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: { url: r.url, headers: r.headers, tenant: req.headers['x-tenant-id'] },
      })),
    }),
  );
}

describe.each(testDatabases())('batching and dedupe on %s', (kind) => {
  let hub: TestHub;
  let plain: Upstream; // acme's deployment of "plain": no batch endpoint
  let saas: Upstream; // the one deployment of "batched", a SHARED system with a $batch endpoint
  let callerKey: string;
  let narrowKey: string;
  let batchHandler: Route = batchEcho;

  const BATCH_PATH = '/$batch';
  const BATCH_URL = `/saas${BATCH_PATH}`;

  beforeAll(async () => {
    [plain, saas] = await Promise.all([startUpstream(), startUpstream()]);
    saas.route(BATCH_URL, (req, res) => batchHandler(req, res));
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'plain', baseUrl: `${plain.url}/api`, token: 'acme-plain-token' });
    await hub.admin(`mutation { createTenant(input: { id: "globex", name: "Globex" }) { id } }`);
    const created = await hub.admin(
      `mutation($i: CreateSystemInput!) { createSystem(input: $i) { id batchPath batchMaxSize } }`,
      { i: { id: 'batched', name: 'Batched', mode: 'SHARED', sharedBaseUrl: `${saas.url}/saas`, batchPath: BATCH_PATH, batchMaxSize: 4 } },
    );
    expect(created.createSystem).toEqual({ id: 'batched', batchPath: BATCH_PATH, batchMaxSize: 4 });
    await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "batched", credential: { kind: BEARER, token: "acme-batch-token" } }) { baseUrl } }`);
    await hub.admin(`mutation { bindSystem(input: { tenantId: "globex", systemId: "batched", credential: { kind: BEARER, token: "globex-batch-token" } }) { baseUrl } }`);
    callerKey = await createCallerWithGrant(hub, { id: 'portal', tenantId: 'acme', grants: [{ tenantId: 'acme' }, { tenantId: 'globex' }] });
    narrowKey = await createCallerWithGrant(hub, { id: 'narrow', tenantId: 'acme', grants: [{ tenantId: 'acme', systemId: 'plain', pathPrefix: '/allowed' }] });
  });
  afterEach(() => {
    batchHandler = batchEcho;
  });
  afterAll(async () => {
    await hub?.close();
    await Promise.all([plain, saas].map((u) => u?.close()));
  });

  /** Invocation records of one (tenant, system), newest first. */
  async function records(tenantId: string, systemId: string) {
    const r = await hub.admin(
      `query($t: ID, $s: ID) { invocations(first: 500, tenantId: $t, systemId: $s) { totalCount edges { node { id callerId tenantId systemId method path status code requestId } } } }`,
      { t: tenantId, s: systemId },
    );
    return { totalCount: r.invocations.totalCount as number, nodes: r.invocations.edges.map((e: any) => e.node) as any[] };
  }

  describe('dedupe', () => {
    it('sends 10 identical Query.invoke fields once and gives every field the same answer', async () => {
      const before = plain.requests.length;
      const recordsBefore = (await records('acme', 'plain')).totalCount;
      const fields = Array.from({ length: 10 }, (_, i) => ({
        alias: `f${i}`,
        tenantId: 'acme',
        systemId: 'plain',
        params: { path: '/patients/7', query: { full: true, tag: ['a', 'b'] }, headers: { 'X-Trace': 'same' } },
      }));
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      const sent = plain.requests.slice(before);
      expect(sent).toHaveLength(1);
      expect(sent[0]!.url).toBe('/api/patients/7?full=true&tag=a&tag=b');
      const results = fields.map((f) => res.body.data[f.alias]);
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.data).toEqual(results[0].data);
        expect(r.data.url).toBe('/api/patients/7?full=true&tag=a&tag=b');
      }
      // Still one record per field.
      const after = await records('acme', 'plain');
      expect(after.totalCount - recordsBefore).toBe(10);
      expect(after.nodes.slice(0, 10).every((n) => n.path === '/patients/7' && n.status === 200 && n.code === null)).toBe(true);
    });

    it('sends 10 distinct paths to a system without batchPath as 10 requests, each field its own answer', async () => {
      const before = plain.requests.length;
      const fields = Array.from({ length: 10 }, (_, i) => ({ alias: `p${i}`, tenantId: 'acme', systemId: 'plain', params: { path: `/items/${i}` } }));
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = plain.requests.slice(before);
      expect(sent).toHaveLength(10);
      expect(sent.map((r) => r.url).sort()).toEqual(fields.map((_, i) => `/api/items/${i}`).sort());
      expect(sent.every((r) => r.method === 'GET' && r.headers.authorization === 'Bearer acme-plain-token')).toBe(true);
      fields.forEach((f, i) => expect(res.body.data[f.alias].data.url).toBe(`/api/items/${i}`));
      expect(new Set(fields.map((f) => res.body.data[f.alias].requestId)).size).toBe(10);
    });

    it('does not merge calls that differ only in a header value or the query', async () => {
      const before = plain.requests.length;
      const fields = [
        { alias: 'a', tenantId: 'acme', systemId: 'plain', params: { path: '/same', headers: { 'X-Trace': '1' } } },
        { alias: 'b', tenantId: 'acme', systemId: 'plain', params: { path: '/same', headers: { 'X-Trace': '2' } } },
        { alias: 'c', tenantId: 'acme', systemId: 'plain', params: { path: '/same', headers: { 'X-Trace': '1' }, query: { v: 1 } } },
        // same as a, with the header name in another case: identical after normalisation
        { alias: 'd', tenantId: 'acme', systemId: 'plain', params: { path: '/same', headers: { 'x-trace': '1' } } },
      ];
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = plain.requests.slice(before);
      expect(sent).toHaveLength(3);
      expect(res.body.data.a.data.headers['x-trace']).toBe('1');
      expect(res.body.data.b.data.headers['x-trace']).toBe('2');
      expect(res.body.data.c.data.url).toBe('/api/same?v=1');
      expect(res.body.data.d.data).toEqual(res.body.data.a.data);
    });

    it('does not merge calls that differ only in their idempotency key', async () => {
      const before = plain.requests.length;
      const run = randomUUID();
      const fields = [
        { alias: 'a', tenantId: 'acme', systemId: 'plain', params: { path: '/keyed', idempotencyKey: `${run}-1` } },
        { alias: 'b', tenantId: 'acme', systemId: 'plain', params: { path: '/keyed', idempotencyKey: `${run}-2` } },
        { alias: 'c', tenantId: 'acme', systemId: 'plain', params: { path: '/keyed' } },
      ];
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = plain.requests.slice(before);
      expect(sent.map((r) => r.headers['idempotency-key'] ?? null).sort()).toEqual([`${run}-1`, `${run}-2`, null].sort());
    });

    it('never deduplicates Mutation.invoke: 3 identical calls are 3 requests', async () => {
      const before = plain.requests.length;
      const fields = Array.from({ length: 3 }, (_, i) => ({ alias: `m${i}`, tenantId: 'acme', systemId: 'plain', params: { method: 'GET', path: '/same' } }));
      const res = await send(hub, 'mutation', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = plain.requests.slice(before);
      expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /api/same', 'GET /api/same', 'GET /api/same']);
      expect(new Set(fields.map((f) => res.body.data[f.alias].requestId)).size).toBe(3);
    });
  });

  describe('batching', () => {
    it('accepts "$" in batchPath', async () => {
      const r = await hub.admin(`{ system(id: "batched") { batchPath batchMaxSize } }`);
      expect(r.system).toEqual({ batchPath: '/$batch', batchMaxSize: 4 });
    });

    it('sends 10 distinct calls to one binding as 3 batch requests (4 + 4 + 2) with credential and tenant header set once', async () => {
      const before = saas.requests.length;
      const recordsBefore = (await records('acme', 'batched')).totalCount;
      const fields = Array.from({ length: 10 }, (_, i) => ({
        alias: `b${i}`,
        tenantId: 'acme',
        systemId: 'batched',
        params: { path: `/patients/${i}`, query: { v: i, tag: ['x', 'y'] }, headers: { 'X-Trace': `t${i}` } },
      }));
      const expectedUrl = (i: number) => `/patients/${i}?v=${i}&tag=x&tag=y`;
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();

      const sent = saas.requests.slice(before);
      expect(sent).toHaveLength(3);
      const parts: BatchBody['requests'] = [];
      for (const batch of sent) {
        expect(batch.method).toBe('POST');
        expect(batch.url).toBe(BATCH_URL);
        expect(batch.headers['content-type']).toMatch(/^application\/json/);
        expect(batch.headers.authorization).toBe('Bearer acme-batch-token');
        expect(batch.headers['x-tenant-id']).toBe('acme');
        const body = JSON.parse(batch.body) as BatchBody;
        expect(Object.keys(body)).toEqual(['requests']);
        expect(new Set(body.requests.map((p) => p.id)).size).toBe(body.requests.length);
        for (const p of body.requests) {
          expect(typeof p.id).toBe('string');
          expect(p.method).toBe('GET');
          // Credential and routing live on the batch request only, never inside a part.
          expect(Object.keys(p.headers).sort()).toEqual(['x-request-id', 'x-trace']);
          parts.push(p);
        }
      }
      expect(sent.map((b) => (JSON.parse(b.body) as BatchBody).requests.length).sort()).toEqual([2, 4, 4]);
      // Relative to the base URL (no /saas), with the query string.
      expect(parts.map((p) => p.url).sort()).toEqual(fields.map((_, i) => expectedUrl(i)).sort());

      fields.forEach((f, i) => {
        const r = res.body.data[f.alias];
        expect(r.status).toBe(200);
        expect(r.ok).toBe(true);
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.data.url).toBe(expectedUrl(i));
        expect(r.data.headers['x-trace']).toBe(`t${i}`);
        // the part's own request id is the field's requestId
        expect(r.data.headers['x-request-id']).toBe(r.requestId);
      });
      const requestIds = fields.map((f) => res.body.data[f.alias].requestId as string);
      expect(new Set(requestIds).size).toBe(10);

      // One record per field, carrying that field's requestId.
      const after = await records('acme', 'batched');
      expect(after.totalCount - recordsBefore).toBe(10);
      const fresh = after.nodes.slice(0, 10);
      expect(fresh.map((n) => n.requestId).sort()).toEqual([...requestIds].sort());
      expect(fresh.map((n) => n.path).sort()).toEqual(fields.map((_, i) => `/patients/${i}`).sort());
      expect(fresh.every((n) => n.callerId === 'portal' && n.method === 'GET' && n.status === 200 && n.code === null)).toBe(true);
    });

    it('sends identical calls to a batching system as one part', async () => {
      const before = saas.requests.length;
      const fields = [0, 1, 2, 3, 4].map((i) => ({ alias: `d${i}`, tenantId: 'acme', systemId: 'batched', params: { path: i < 3 ? '/dup' : `/other/${i}` } }));
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = saas.requests.slice(before);
      expect(sent).toHaveLength(1);
      expect((JSON.parse(sent[0]!.body) as BatchBody).requests.map((p) => p.url).sort()).toEqual(['/dup', '/other/3', '/other/4']);
      expect(res.body.data.d1.data).toEqual(res.body.data.d0.data);
      expect(res.body.data.d2.data).toEqual(res.body.data.d0.data);
      expect(res.body.data.d4.data.url).toBe('/other/4');
    });

    it("never mixes two tenants' bindings of one system into one batch", async () => {
      batchHandler = tenantBatchEcho;
      const before = saas.requests.length;
      const fields = [
        ...[1, 2, 3].map((i) => ({ alias: `a${i}`, tenantId: 'acme', systemId: 'batched', params: { path: `/acme-only/${i}` } })),
        ...[1, 2, 3].map((i) => ({ alias: `g${i}`, tenantId: 'globex', systemId: 'batched', params: { path: `/globex-only/${i}` } })),
      ];
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.body.errors).toBeUndefined();
      const sent = saas.requests.slice(before);
      expect(sent).toHaveLength(2);
      for (const batch of sent) {
        const tenant = batch.headers['x-tenant-id'];
        expect(batch.headers.authorization).toBe(`Bearer ${tenant}-batch-token`);
        const urls = (JSON.parse(batch.body) as BatchBody).requests.map((p) => p.url).sort();
        expect(urls).toEqual([1, 2, 3].map((i) => `/${tenant}-only/${i}`));
      }
      expect(sent.map((b) => b.headers['x-tenant-id']).sort()).toEqual(['acme', 'globex']);
      for (const f of fields) {
        const r = res.body.data[f.alias];
        expect(r.status).toBe(200);
        expect(r.data.tenant).toBe(f.tenantId);
        expect(r.data.url).toBe(f.params.path);
      }
    });

    it('gives a part answered 404 that status as data and the other fields theirs', async () => {
      batchHandler = (req, res) => {
        const { requests } = JSON.parse(req.body) as BatchBody;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            responses: requests.map((r) =>
              r.url.startsWith('/missing')
                ? { id: r.id, status: 404, headers: { 'content-type': 'application/json' }, body: { error: 'no such patient' } }
                : { id: r.id, status: 200, headers: { 'content-type': 'application/json' }, body: { url: r.url } },
            ),
          }),
        );
      };
      const before = saas.requests.length;
      const fields = [
        { alias: 'x1', tenantId: 'acme', systemId: 'batched', params: { path: '/found/1' } },
        { alias: 'x2', tenantId: 'acme', systemId: 'batched', params: { path: '/missing/2' } },
        { alias: 'x3', tenantId: 'acme', systemId: 'batched', params: { path: '/found/3' } },
      ];
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(saas.requests.length - before).toBe(1);
      expect(res.body.data.x2).toMatchObject({ status: 404, ok: false, data: { error: 'no such patient' } });
      expect(res.body.data.x1).toMatchObject({ status: 200, ok: true, data: { url: '/found/1' } });
      expect(res.body.data.x3).toMatchObject({ status: 200, ok: true, data: { url: '/found/3' } });
      const recs = (await records('acme', 'batched')).nodes.slice(0, 3);
      expect(recs.find((n) => n.path === '/missing/2')).toMatchObject({ status: 404, code: null });
    });

    it('gives a call the batch answer left out UPSTREAM_UNREACHABLE and the other fields their data', async () => {
      batchHandler = (req, res) => {
        const { requests } = JSON.parse(req.body) as BatchBody;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            responses: requests.filter((r) => r.url !== '/dropped').map((r) => ({ id: r.id, status: 200, headers: {}, body: { url: r.url } })),
          }),
        );
      };
      const before = saas.requests.length;
      const fields = [
        { alias: 'y1', tenantId: 'acme', systemId: 'batched', params: { path: '/kept/1' } },
        { alias: 'y2', tenantId: 'acme', systemId: 'batched', params: { path: '/dropped' } },
        { alias: 'y3', tenantId: 'acme', systemId: 'batched', params: { path: '/kept/3' } },
      ];
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.status).toBe(200);
      expect(saas.requests.length - before).toBe(1);
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors![0]!.path).toEqual(['y2']);
      expect(res.body.errors![0]!.extensions?.code).toBe('UPSTREAM_UNREACHABLE');
      // The hub itself did answer the other two (their records say so) ...
      const recs = (await records('acme', 'batched')).nodes.slice(0, 3);
      expect(recs.find((n) => n.path === '/dropped')).toMatchObject({ status: null, code: 'UPSTREAM_UNREACHABLE' });
      expect(recs.filter((n) => n.path.startsWith('/kept/')).map((n) => n.status)).toEqual([200, 200]);
      // ... and the client gets them.
      expect(res.body.data?.y1).toMatchObject({ status: 200, data: { url: '/kept/1' } });
      expect(res.body.data?.y3).toMatchObject({ status: 200, data: { url: '/kept/3' } });
      expect(res.body.data?.y2 ?? null).toBeNull();
    });

    it('gives every field of a batch the batch endpoint answered 500 that status as data', async () => {
      batchHandler = (_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'batch endpoint down' }));
      };
      const before = saas.requests.length;
      const fields = [1, 2, 3].map((i) => ({ alias: `z${i}`, tenantId: 'acme', systemId: 'batched', params: { path: `/z/${i}` } }));
      const res = await send(hub, 'query', fields, callerKey);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(saas.requests.length - before).toBe(1);
      for (const f of fields) expect(res.body.data[f.alias]).toMatchObject({ status: 500, ok: false, data: { error: 'batch endpoint down' } });
      const recs = (await records('acme', 'batched')).nodes.slice(0, 3);
      expect(recs.map((n) => [n.status, n.code])).toEqual([
        [500, null],
        [500, null],
        [500, null],
      ]);
    });
  });

  describe('partial success', () => {
    it('answers the allowed field and refuses the forbidden one in the same document, with HTTP 200', async () => {
      const before = plain.requests.length;
      const res = await hub.gql(
        `{ allowed: invoke(tenantId: "acme", systemId: "plain", params: { path: "/allowed/1" }) { status data }
           refused: invoke(tenantId: "acme", systemId: "plain", params: { path: "/secret" }) { status data } }`,
        {},
        { key: narrowKey },
      );
      expect(res.status).toBe(200);
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors![0]!.path).toEqual(['refused']);
      expect(res.body.errors![0]!.extensions?.code).toBe('FORBIDDEN');
      expect(res.body.data?.allowed).toMatchObject({ status: 200, data: { url: '/api/allowed/1' } });
      expect(res.body.data?.refused ?? null).toBeNull();
      // the allowed call was made (before the answer), the refused one was not
      expect(plain.requests.slice(before).map((r) => r.url)).toEqual(['/api/allowed/1']);
    });
  });
});

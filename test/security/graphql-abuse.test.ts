// Attack suite, GraphQL abuse (issue 3, part 4): documents that are too deep, too wide, too long or
// too large, bodies that are not JSON, batching, mutations over GET, introspection and GraphiQL in
// production, schema suggestions and stack traces. Every refused request must be refused before
// execution: the canary (the only called system the hub knows) receives nothing, not even a TCP
// connection, and no invocation record is written.
import { Lexer, Source, TokenKind } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { createCallerWithGrant, seedExclusive } from '../helpers/seed.js';
import { rawRequest, startCanary, type Canary, type RawResponse } from '../helpers/security-canary.js';
import { startTestHub, type TestHub } from '../helpers/test-hub.js';

const GQL_JSON = 'application/graphql-response+json';
const invokeField = (path: string, alias?: string) => `${alias ? `${alias}: ` : ''}invoke(tenantId: "acme", systemId: "crm", params: { path: "${path}" }) { status }`;

/** Lexical tokens of a document, as graphql-js counts them (EOF excluded). */
function tokenCount(doc: string): number {
  const lexer = new Lexer(new Source(doc));
  let n = 0;
  while (lexer.advance().kind !== TokenKind.EOF) n++;
  return n;
}

/** A selection nested `levels` object fields deep: tenant > bindings > tenant > bindings ... */
function nested(levels: number): string {
  const fields = Array.from({ length: levels }, (_, i) => (i === 0 ? 'tenant(id: "acme")' : i % 2 === 1 ? 'bindings' : 'tenant'));
  const leaf = levels % 2 === 1 ? 'id' : 'baseUrl';
  return fields.reduceRight((inner, field) => `${field} { ${inner} }`, leaf);
}

/** Nothing in the body looks like a server-side stack trace or source location. */
function expectNoStack(text: string) {
  expect(text).not.toMatch(/"stack"\s*:/);
  expect(text).not.toMatch(/\bat [\w.<>$ ]*\(?(file:\/\/|\/)[^)]*:\d+:\d+\)?/);
  expect(text).not.toMatch(/node_modules|\/work\/|\/src\/|\.ts:\d+/);
}

describe.each(testDatabases())('GraphQL abuse on %s', (kind) => {
  let hub: TestHub;
  let canary: Canary;
  let callerKey: string;
  const jsonHeaders = () => ({ 'content-type': 'application/json', accept: GQL_JSON, authorization: `Bearer ${callerKey}` });

  /** Totals of invocation records (the admin read flushes the audit buffer first). */
  const records = async (h: TestHub = hub) => (await h.admin(`{ invocations(first: 1) { totalCount } }`)).invocations.totalCount as number;

  /** Runs `attempt` and proves that it reached nothing: no connection at the canary, no record. */
  async function refusedBeforeExecution<T>(attempt: () => Promise<T>, h: TestHub = hub): Promise<T> {
    const hits = canary.hits();
    const before = await records(h);
    const result = await attempt();
    expect(canary.hits(), 'the canary was reached').toBe(hits);
    expect(await records(h), 'an invocation was recorded, so the document was executed').toBe(before);
    return result;
  }

  const post = (doc: string, key: string | null = callerKey, h: TestHub = hub) => h.gql(doc, undefined, { key });

  beforeAll(async () => {
    canary = await startCanary();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/api`, token: 'abuse-crm-token' });
    callerKey = await createCallerWithGrant(hub, { id: 'abuser', tenantId: 'acme', grants: [{ tenantId: 'acme' }] });
  });
  afterAll(async () => {
    await hub?.close();
    await canary?.close();
  });

  describe('document limits (refused before any resolver runs)', () => {
    it('refuses a document nested 13 levels deep (limit 12) and accepts exactly 12', async () => {
      const deep = `{ ${invokeField('/deep')} ${nested(12)} }`;
      const res = await refusedBeforeExecution(() => post(deep, hub.adminKey));
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.map((e) => e.extensions?.code)).toContain('BAD_USER_INPUT');
      expect(JSON.stringify(res.body.errors)).toMatch(/deeper than 12/);

      // Control: one level less is a valid, executed document (its invoke goes out).
      const hits = canary.requests.length;
      const ok = await post(`{ ${invokeField('/deep')} ${nested(11)} }`, hub.adminKey);
      expect(ok.body.errors, JSON.stringify(ok.body.errors)).toBeUndefined();
      expect(ok.body.data.invoke.status).toBe(200);
      expect(canary.requests.length).toBe(hits + 1);
    });

    it('refuses 31 aliases (limit 30), even when every aliased field is a harmless invoke; 30 go out', async () => {
      const aliased = (n: number) => `{ ${Array.from({ length: n }, (_, i) => invokeField(`/alias/${i}`, `a${i}`)).join(' ')} }`;
      const res = await refusedBeforeExecution(() => post(aliased(31)));
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.body.errors?.[0]?.message).toMatch(/more than 30 aliases/);

      const before = canary.requests.length;
      const ok = await post(aliased(30));
      expect(ok.body.errors, JSON.stringify(ok.body.errors)).toBeUndefined();
      expect(canary.requests.length).toBe(before + 30);
    });

    it('refuses a 1000-alias document of invoke fields with no upstream call and no record (default limits)', async () => {
      const doc = `{ ${Array.from({ length: 1000 }, (_, i) => invokeField(`/bomb/${i}`, `x${i}`)).join('\n')} }`;
      const res = await refusedBeforeExecution(() => post(doc));
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.length).toBeGreaterThan(0);
    });

    it('refuses 51 invoke fields hidden in fragment spreads (limit 50); 50 spreads are one deduplicated call', async () => {
      const spreads = (n: number) => `query { ${'...One '.repeat(n)} } fragment One on Query { ${invokeField('/fragment')} }`;
      const res = await refusedBeforeExecution(() => post(spreads(51)));
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.body.errors?.[0]?.message).toMatch(/more than 50 invoke fields/);

      const before = canary.requests.length;
      const ok = await post(spreads(50));
      expect(ok.body.errors, JSON.stringify(ok.body.errors)).toBeUndefined();
      expect(canary.requests.length).toBe(before + 1);
    });

    it('refuses a nested fragment bomb (4 x 4 x 4 = 64 invokes in a few hundred bytes)', async () => {
      const doc = `query { ...A }
        fragment A on Query { ...B ...B ...B ...B }
        fragment B on Query { ...C ...C ...C ...C }
        fragment C on Query { ...I ...I ...I ...I }
        fragment I on Query { ${invokeField('/fragment-bomb')} }`;
      const res = await refusedBeforeExecution(() => post(doc));
      expect(res.status).toBe(400);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.body.errors?.[0]?.message).toMatch(/invoke fields/);
    });

    it('refuses 51 Mutation.invoke fields through fragments too', async () => {
      const doc = `mutation { ${'...M '.repeat(51)} } fragment M on Mutation { invoke(tenantId: "acme", systemId: "crm", params: { method: POST, path: "/m" }) { status } }`;
      const res = await refusedBeforeExecution(() => post(doc));
      expect(res.status).toBe(400);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(canary.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    });

    describe('token limit (2000)', () => {
      // Filler tokens in a JSON list (one token per number): many identical fields would instead
      // trip graphql-js's own budget for comparing overlapping fields.
      const doc = (n: number) => `{ invoke(tenantId: "acme", systemId: "crm", params: { path: "/tokens", query: { t: [${' 1'.repeat(n)} ] } }) { status } }`;
      const base = tokenCount(doc(0));
      const over = doc(2001 - base);
      const exact = doc(2000 - base);

      it('refuses a document of 2001 tokens with 400 before execution', async () => {
        expect(tokenCount(over)).toBe(2001);
        const res = await refusedBeforeExecution(() => post(over));
        expect(res.status).toBe(400);
        expect(res.body.data ?? null).toBeNull();
        expect(res.body.errors?.[0]?.message).toMatch(/2000 tokens/);
      });

      it('names the token limit with BAD_USER_INPUT, like the other document limits', async () => {
        const res = await post(over);
        expect(res.body.errors?.[0]?.extensions?.code, JSON.stringify(res.body.errors)).toBe('BAD_USER_INPUT');
      });

      it('accepts a document of exactly 2000 tokens (control)', async () => {
        expect(tokenCount(exact)).toBe(2000);
        const before = canary.requests.length;
        const ok = await post(exact);
        expect(ok.body.errors, JSON.stringify(ok.body.errors)).toBeUndefined();
        expect(canary.requests.length).toBe(before + 1);
      });
    });

    describe('with the token limit raised (HUB_MAX_TOKENS=100000), the alias and invoke limits still hold', () => {
      let wide: TestHub;
      beforeAll(async () => {
        wide = await startTestHub(kind, { env: { HUB_MAX_TOKENS: '100000' } });
        await seedExclusive(wide, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/api` });
      });
      afterAll(async () => {
        await wide?.close();
      });

      it('refuses the 1000-alias invoke document by its aliases and invoke fields, before execution', async () => {
        const doc = `{ ${Array.from({ length: 1000 }, (_, i) => invokeField(`/bomb/${i}`, `x${i}`)).join('\n')} }`;
        const res = await refusedBeforeExecution(() => post(doc, wide.adminKey, wide), wide);
        expect(res.status).toBe(400);
        expect(res.body.data ?? null).toBeNull();
        const messages = res.body.errors!.map((e) => e.message).join('\n');
        expect(res.body.errors!.every((e) => e.extensions?.code === 'BAD_USER_INPUT')).toBe(true);
        expect(messages).toMatch(/more than 30 aliases/);
        expect(messages).toMatch(/more than 50 invoke fields/);
      });
    });
  });

  describe('request bodies (HUB_MAX_REQUEST_BYTES=2000)', () => {
    let small: TestHub;
    /** A JSON body of exactly `bytes` bytes whose document holds an invoke. */
    const bodyOf = (bytes: number) => {
      const shell = (pad: string) => JSON.stringify({ query: `{ ${invokeField('/body')} } # ${pad}` });
      const pad = 'x'.repeat(bytes - Buffer.byteLength(shell('')));
      const body = shell(pad);
      expect(Buffer.byteLength(body)).toBe(bytes);
      return body;
    };
    const headers = () => ({ 'content-type': 'application/json', accept: GQL_JSON, authorization: `Bearer ${small.adminKey}` });

    beforeAll(async () => {
      small = await startTestHub(kind, { env: { HUB_MAX_REQUEST_BYTES: '2000' } });
      await seedExclusive(small, { tenantId: 'acme', systemId: 'crm', baseUrl: `${canary.url}/api` });
    });
    afterAll(async () => {
      await small?.close();
    });

    it.each([
      ['with a content-length', false],
      ['with chunked transfer and no content-length', true],
    ])('answers 413 to a body over the limit %s, and executes nothing', async (_label, chunked) => {
      const res = await refusedBeforeExecution(() => rawRequest(small.url, { headers: headers(), body: bodyOf(2001), chunked }), small);
      expect(res.status).toBe(413);
      expect(res.json?.data ?? null).toBeNull();
      expect(res.json?.errors?.length).toBeGreaterThan(0);
    });

    it('answers 413 to a 1 MiB chunked body without reading it into a response', async () => {
      const res = await refusedBeforeExecution(() => rawRequest(small.url, { headers: headers(), body: bodyOf(1024 * 1024), chunked: true }), small);
      expect(res.status).toBe(413);
    });

    it('accepts a body of exactly the limit (control)', async () => {
      const before = canary.requests.length;
      const res = await rawRequest(small.url, { headers: headers(), body: bodyOf(2000) });
      expect(res.status, res.text).toBe(200);
      expect(res.json.data.invoke.status).toBe(200);
      expect(canary.requests.length).toBe(before + 1);
    });
  });

  describe('what reaches GraphQL at all', () => {
    it.each([
      ['a truncated object', '{"query": "{ viewer { role } }"'],
      ['trailing garbage', '{"query": "{ viewer { role } }"} garbage'],
      ['single quotes', "{'query': '{ viewer { role } }'}"],
      ['an empty body', ''],
      ['a bare string', '"{ viewer { role } }"'],
      ['a JSON number', '42'],
    ])('answers 400 to malformed JSON (%s) and executes nothing', async (_label, body) => {
      const withInvoke = body.replace('viewer { role }', invokeField('/malformed').replaceAll('"', '\\"'));
      const res = await refusedBeforeExecution(() => rawRequest(hub.url, { headers: jsonHeaders(), body: withInvoke }));
      expect(res.status).toBe(400);
      expect(res.json?.data ?? null).toBeNull();
      expect(res.json?.errors?.length).toBeGreaterThan(0);
      expectNoStack(res.text);
    });

    const document = JSON.stringify({ query: `{ ${invokeField('/content-type')} }` });
    const form = `query=${encodeURIComponent(`{ ${invokeField('/content-type')} }`)}`;
    const multipart = [
      '--XBOUNDARY',
      'Content-Disposition: form-data; name="operations"',
      '',
      document,
      '--XBOUNDARY',
      'Content-Disposition: form-data; name="map"',
      '',
      '{}',
      '--XBOUNDARY--',
      '',
    ].join('\r\n');
    it.each([
      ['text/plain', 'text/plain', document],
      ['text/plain with a charset', 'text/plain; charset=utf-8', document],
      ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded', form],
      ['multipart/form-data (a cross-site form post or an upload)', 'multipart/form-data; boundary=XBOUNDARY', multipart],
      ['application/graphql', 'application/graphql', `{ ${invokeField('/content-type')} }`],
      ['a JSON look-alike', 'application/jsonx', document],
      ['no content type at all', '', document],
    ])('answers 415 to %s and executes nothing', async (_label, contentType, body) => {
      const headers: Record<string, string> = { ...jsonHeaders(), 'content-type': contentType };
      if (!contentType) delete headers['content-type'];
      const res = await refusedBeforeExecution(() => rawRequest(hub.url, { headers, body }));
      expect(res.status).toBe(415);
      expect(res.json?.data ?? null).toBeNull();
    });

    it('refuses a JSON array body (operation batching) and executes none of its operations', async () => {
      const body = JSON.stringify([{ query: `{ ${invokeField('/batch/1')} }` }, { query: `{ ${invokeField('/batch/2')} }` }]);
      const res = await refusedBeforeExecution(() => rawRequest(hub.url, { headers: jsonHeaders(), body }));
      expect(res.status).toBe(400);
      expect(Array.isArray(res.json)).toBe(false);
      expect(res.json?.errors?.length).toBeGreaterThan(0);
    });

    it.each([GQL_JSON, 'application/json'])('answers 405 to a mutation sent with GET (Accept: %s) and executes nothing', async (accept) => {
      const mutation = `mutation { invoke(tenantId: "acme", systemId: "crm", params: { method: DELETE, path: "/via-get" }) { status } }`;
      const res = await refusedBeforeExecution(() =>
        rawRequest(hub.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent(mutation)}`, headers: { accept, authorization: `Bearer ${callerKey}` } }),
      );
      expect(res.status).toBe(405);
      expect(res.json?.data ?? null).toBeNull();
      expect(canary.requests.filter((r) => r.method === 'DELETE')).toHaveLength(0);
    });

    it('still runs a query sent with GET (control for the 405)', async () => {
      const before = canary.requests.length;
      const res = await rawRequest(hub.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent(`{ ${invokeField('/via-get')} }`)}`, headers: { accept: GQL_JSON, authorization: `Bearer ${callerKey}` } });
      expect(res.status).toBe(200);
      expect(res.json.data.invoke.status).toBe(200);
      expect(canary.requests.length).toBe(before + 1);
    });
  });

  describe('schema disclosure', () => {
    it.each([
      ['a misspelled field', '{ tenantz(first: 1) { totalCount } }'],
      ['a misspelled argument', '{ invoke(tenantI: "acme", systemId: "crm", params: { path: "/x" }) { status } }'],
      ['a misspelled enum value', '{ invoke(tenantId: "acme", systemId: "crm", params: { path: "/x", method: GETT }) { status } }'],
      ['a misspelled input field', '{ invoke(tenantId: "acme", systemId: "crm", params: { pth: "/x" }) { status } }'],
      ['a misspelled type', 'query($p: InvokeParam!) { invoke(tenantId: "acme", systemId: "crm", params: $p) { status } }'],
      ['a misspelled result field', '{ invoke(tenantId: "acme", systemId: "crm", params: { path: "/x" }) { statuss } }'],
    ])('gives no "Did you mean" for %s', async (_label, doc) => {
      const res = await refusedBeforeExecution(() => post(doc));
      expect(res.status).toBe(400);
      expect(res.body.errors?.length).toBeGreaterThan(0);
      expect(JSON.stringify(res.body)).not.toMatch(/did you mean/i);
    });

    it('gives no "Did you mean" for misspelled variable values either', async () => {
      const res = await refusedBeforeExecution(() =>
        hub.gql(`query($p: InvokeParams!) { invoke(tenantId: "acme", systemId: "crm", params: $p) { status } }`, { p: { pth: '/x', method: 'GETT' } }, { key: callerKey }),
      );
      expect(res.body.errors?.length).toBeGreaterThan(0);
      expect(JSON.stringify(res.body)).not.toMatch(/did you mean|"path"|"GET"/i);
    });

    it('never puts a stack trace in an error, whatever went wrong', async () => {
      const texts: string[] = [];
      const add = (r: RawResponse | { body: unknown }) => texts.push('text' in r ? r.text : JSON.stringify(r.body));
      add(await rawRequest(hub.url, { headers: jsonHeaders(), body: '{"query": ' }));
      add(await rawRequest(hub.url, { headers: jsonHeaders(), body: JSON.stringify({ query: 42 }) }));
      add(await rawRequest(hub.url, { headers: jsonHeaders(), body: JSON.stringify({ query: '{ viewer { role } }', variables: 'not an object' }) }));
      add(await rawRequest(hub.url, { headers: jsonHeaders(), body: JSON.stringify({ query: '{ viewer { role } }', extensions: [1] }) }));
      add(await post('{ viewer { '));
      add(await post('{ __typename @skip }'));
      add(await post('{ viewer { role } } { viewer { role } }'));
      add(await hub.gql('query($n: Int) { invocations(first: $n) { totalCount } }', { n: 'many' }, { key: callerKey }));
      add(await hub.gql('query($n: Int) { invocations(first: $n) { totalCount } }', { n: 1e12 }, { key: callerKey }));
      add(await post('{ invocations(first: 100000) { totalCount } }'));
      add(await post('{ invocations(after: "not-a-cursor") { totalCount } }'));
      add(await post('{ tenants(first: 1) { totalCount } }')); // FORBIDDEN for a caller
      add(await post(`{ ${invokeField('/../escape')} }`));
      add(await post(`{ ${invokeField('/x')} }`, 'thub_' + 'A'.repeat(43))); // 401
      for (const text of texts) expectNoStack(text);
      expect(texts.every((t) => t.includes('"errors"'))).toBe(true);
    });
  });

  describe('production (NODE_ENV=production)', () => {
    let prod: TestHub;
    let open: TestHub;
    const INTROSPECTION = ['{ __schema { queryType { name } types { name } } }', '{ __type(name: "Binding") { fields { name } } }'];
    const graphiql = (h: TestHub) => rawRequest(h.url, { method: 'GET', path: '/graphql', headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });

    beforeAll(async () => {
      prod = await startTestHub(kind, { env: { NODE_ENV: 'production' } });
      open = await startTestHub(kind, { env: { NODE_ENV: 'production', HUB_GRAPHIQL: 'true', HUB_INTROSPECTION: 'true' } });
    });
    afterAll(async () => {
      await prod?.close();
      await open?.close();
    });

    it.each(INTROSPECTION)('refuses the introspection query %s, even to an admin', async (doc) => {
      const res = await prod.gql(doc);
      expect(res.status).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(JSON.stringify(res.body)).not.toMatch(/"Binding"|credential/);
      // __typename is not introspection of the schema: it stays available.
      expect((await prod.gql('{ __typename }')).body.data).toEqual({ __typename: 'Query' });
    });

    it('does not render GraphiQL for a browser GET', async () => {
      const res = await graphiql(prod);
      expect(res.headers['content-type'] ?? '').not.toMatch(/text\/html/);
      expect(res.text).not.toMatch(/<html|graphiql/i);
    });

    it('turns introspection and GraphiQL back on with HUB_INTROSPECTION=true and HUB_GRAPHIQL=true', async () => {
      const res = await open.gql(INTROSPECTION[0]!);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.__schema.queryType.name).toBe('Query');
      const page = await graphiql(open);
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/text\/html/);
      expect(page.text).toMatch(/<html/i);
    });

    it('has GraphiQL and introspection on by default outside production (control)', async () => {
      const page = await graphiql(hub);
      expect(page.headers['content-type']).toMatch(/text\/html/);
      expect((await hub.gql(INTROSPECTION[1]!)).body.data.__type.fields.length).toBeGreaterThan(3);
    });

    it('gives no "Did you mean" in production either', async () => {
      const res = await prod.gql('{ tenantz(first: 1) { totalCount } bindng(tenantId: "a", systemId: "b") { baseUrl } }');
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).not.toMatch(/did you mean/i);
    });
  });
});

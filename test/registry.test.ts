// The registry as an admin uses it: tenants, systems, bindings, callers, keys and grants, their
// validation (BAD_USER_INPUT naming the field), NOT_FOUND, all-or-nothing writes and pagination.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { expectData, expectError, registrySnapshot, rowCounts } from './helpers/registry-snapshot.js';
import { createTestDatabase, lockWaiters, repeatableReadByDefault, type TestDatabase } from './helpers/test-database.js';
import { startTestHub, type GqlResponse, type TestHub } from './helpers/test-hub.js';

const TENANT_FIELDS = `id name disabled createdAt bindings { system { id } baseUrl }`;
const SYSTEM_FIELDS = `id name mode sharedBaseUrl tenantHeader timeoutMs batchPath batchMaxSize bindings { tenant { id } baseUrl }`;
const BINDING_FIELDS = `tenant { id } system { id } baseUrl disabled createdAt updatedAt credential { kind headerName updatedAt expiresAt }`;
const CALLER_FIELDS = `id name role disabled tenant { id } grants { id } apiKeys { id prefix createdAt lastUsedAt revokedAt expiresAt }`;
const GRANT_FIELDS = `id caller { id } tenant { id } system { id } methods pathPrefix expiresAt createdAt`;

const M = {
  createTenant: `mutation($i: CreateTenantInput!) { createTenant(input: $i) { ${TENANT_FIELDS} } }`,
  updateTenant: `mutation($id: ID!, $i: UpdateTenantInput!) { updateTenant(id: $id, input: $i) { ${TENANT_FIELDS} } }`,
  deleteTenant: `mutation($id: ID!) { deleteTenant(id: $id) }`,
  createSystem: `mutation($i: CreateSystemInput!) { createSystem(input: $i) { ${SYSTEM_FIELDS} } }`,
  updateSystem: `mutation($id: ID!, $i: UpdateSystemInput!) { updateSystem(id: $id, input: $i) { ${SYSTEM_FIELDS} } }`,
  deleteSystem: `mutation($id: ID!) { deleteSystem(id: $id) }`,
  bindSystem: `mutation($i: BindSystemInput!) { bindSystem(input: $i) { ${BINDING_FIELDS} } }`,
  setCredential: `mutation($t: ID!, $s: ID!, $c: CredentialInput!) { setCredential(tenantId: $t, systemId: $s, credential: $c) { ${BINDING_FIELDS} } }`,
  unbindSystem: `mutation($t: ID!, $s: ID!) { unbindSystem(tenantId: $t, systemId: $s) }`,
  createCaller: `mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey caller { ${CALLER_FIELDS} } } }`,
  updateCaller: `mutation($id: ID!, $i: UpdateCallerInput!) { updateCaller(id: $id, input: $i) { ${CALLER_FIELDS} } }`,
  deleteCaller: `mutation($id: ID!) { deleteCaller(id: $id) }`,
  issueApiKey: `mutation($c: ID!, $e: DateTime) { issueApiKey(callerId: $c, expiresAt: $e) { apiKey key { id prefix createdAt lastUsedAt revokedAt expiresAt } } }`,
  revokeApiKey: `mutation($id: ID!) { revokeApiKey(id: $id) { id prefix revokedAt } }`,
  grant: `mutation($i: GrantInput!) { grant(input: $i) { ${GRANT_FIELDS} } }`,
  revokeGrant: `mutation($id: ID!) { revokeGrant(id: $id) }`,
};
const Q = {
  tenant: `query($id: ID!) { tenant(id: $id) { ${TENANT_FIELDS} } }`,
  system: `query($id: ID!) { system(id: $id) { ${SYSTEM_FIELDS} } }`,
  binding: `query($t: ID!, $s: ID!) { binding(tenantId: $t, systemId: $s) { ${BINDING_FIELDS} } }`,
  caller: `query($id: ID!) { caller(id: $id) { ${CALLER_FIELDS} grants { ${GRANT_FIELDS} } } }`,
};

const BAD_IDS = ['', '-x', '.x', 'a b', 'x'.repeat(65), 'é', 'a/b', 'a\nb'];
const BAD_URLS = ['ftp://x', 'http://user:pw@host', 'http://user@host', 'http://h/?q=1', 'http://h/#f', 'not a url', 'javascript:alert(1)', '/relative/path', 'http://h\\x'];

/** Within a few seconds of now: the clock of the hub's database and of this process agree. */
function expectRecent(iso: string | null | undefined) {
  expect(typeof iso).toBe('string');
  const t = new Date(iso!).getTime();
  expect(Number.isNaN(t)).toBe(false);
  expect(Math.abs(Date.now() - t)).toBeLessThan(60_000);
}

describe.each(testDatabases())('registry on %s', (kind) => {
  let hub: TestHub;
  /** every response body the hub gave in this suite, to search for leaked secrets */
  const seen: string[] = [];

  beforeAll(async () => {
    hub = await startTestHub(kind);
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function gql(doc: string, vars?: Record<string, unknown>): Promise<GqlResponse> {
    const res = await hub.gql(doc, vars);
    seen.push(JSON.stringify(res.body));
    return res;
  }
  const ok = async (doc: string, vars?: Record<string, unknown>) => expectData(await gql(doc, vars));

  /** The mutation fails with `code` and a message matching `message`, and the registry is exactly as before. */
  async function refused(doc: string, vars: Record<string, unknown>, code: string, message?: RegExp) {
    const before = await registrySnapshot(hub);
    const counts = await rowCounts(hub);
    const error = expectError(await gql(doc, vars), code, { message });
    expect(await registrySnapshot(hub)).toEqual(before);
    expect(await rowCounts(hub)).toEqual(counts);
    return error;
  }

  // ---------------------------------------------------------------------------------------------
  describe('tenants', () => {
    it('creates, reads, updates and deletes a tenant', async () => {
      const created = (await ok(M.createTenant, { i: { id: 'crud-t', name: 'Crud Tenant' } })).createTenant;
      expect(created).toMatchObject({ id: 'crud-t', name: 'Crud Tenant', disabled: false, bindings: [] });
      expectRecent(created.createdAt);
      expect((await ok(Q.tenant, { id: 'crud-t' })).tenant).toEqual(created);

      const renamed = (await ok(M.updateTenant, { id: 'crud-t', i: { name: 'Renamed' } })).updateTenant;
      expect(renamed).toEqual({ ...created, name: 'Renamed' });
      const disabled = (await ok(M.updateTenant, { id: 'crud-t', i: { disabled: true } })).updateTenant;
      expect(disabled).toEqual({ ...created, name: 'Renamed', disabled: true });
      expect((await ok(Q.tenant, { id: 'crud-t' })).tenant).toEqual(disabled);

      expect((await ok(M.deleteTenant, { id: 'crud-t' })).deleteTenant).toBe(true);
      expect((await ok(Q.tenant, { id: 'crud-t' })).tenant).toBeNull();
      await refused(M.deleteTenant, { id: 'crud-t' }, 'NOT_FOUND');
    });

    it('accepts IDs at the limits of the ID rule', async () => {
      for (const id of ['a', '9', 'A.b_c-D', 'x'.repeat(64)]) {
        expect((await ok(M.createTenant, { i: { id, name: id } })).createTenant.id).toBe(id);
      }
    });

    it.each(BAD_IDS)('refuses the tenant id %j with BAD_USER_INPUT naming the field', async (id) => {
      await refused(M.createTenant, { i: { id, name: 'x' } }, 'BAD_USER_INPUT', /\bid\b/);
    });

    it('refuses a duplicate tenant id and keeps the original', async () => {
      await ok(M.createTenant, { i: { id: 'dup-t', name: 'Original' } });
      await refused(M.createTenant, { i: { id: 'dup-t', name: 'Impostor' } }, 'BAD_USER_INPUT', /dup-t.*already exists|already exists.*dup-t/);
      expect((await ok(Q.tenant, { id: 'dup-t' })).tenant.name).toBe('Original');
    });

    it('refuses a blank name', async () => {
      await refused(M.createTenant, { i: { id: 'blank-t', name: '   ' } }, 'BAD_USER_INPUT', /name/);
    });

    it('answers NOT_FOUND for updating or deleting an unknown tenant', async () => {
      await refused(M.updateTenant, { id: 'ghost-t', i: { name: 'x' } }, 'NOT_FOUND', /ghost-t/);
      await refused(M.deleteTenant, { id: 'ghost-t' }, 'NOT_FOUND', /ghost-t/);
      expect((await ok(Q.tenant, { id: 'ghost-t' })).tenant).toBeNull();
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('systems', () => {
    beforeAll(async () => {
      await ok(M.createSystem, { i: { id: 'goodurl-s', name: 'x', mode: 'SHARED', sharedBaseUrl: 'http://good.example' } });
      await ok(M.createSystem, { i: { id: 'range-ok-s', name: 'x', mode: 'EXCLUSIVE' } });
      await ok(M.createSystem, { i: { id: 'hdr-ok-s', name: 'x', mode: 'SHARED', sharedBaseUrl: 'http://h.example' } });
    });

    it('creates an EXCLUSIVE system with the documented defaults', async () => {
      const s = (await ok(M.createSystem, { i: { id: 'crud-ex', name: 'Exclusive', mode: 'EXCLUSIVE' } })).createSystem;
      expect(s).toEqual({ id: 'crud-ex', name: 'Exclusive', mode: 'EXCLUSIVE', sharedBaseUrl: null, tenantHeader: 'X-Tenant-Id', timeoutMs: 10000, batchPath: null, batchMaxSize: 20, bindings: [] });
      expect((await ok(Q.system, { id: 'crud-ex' })).system).toEqual(s);
    });

    it('creates a SHARED system with every field, updates it field by field and deletes it', async () => {
      const input = { id: 'crud-sh', name: 'Shared', mode: 'SHARED', sharedBaseUrl: 'https://saas.example.com/api', tenantHeader: 'X-Org', timeoutMs: 2500, batchPath: '/$batch', batchMaxSize: 5 };
      const s = (await ok(M.createSystem, { i: input })).createSystem;
      expect(s).toEqual({ ...input, bindings: [] });

      const u1 = (await ok(M.updateSystem, { id: 'crud-sh', i: { name: 'Shared 2', timeoutMs: 300000 } })).updateSystem;
      expect(u1).toEqual({ ...s, name: 'Shared 2', timeoutMs: 300000 });
      const u2 = (await ok(M.updateSystem, { id: 'crud-sh', i: { batchPath: null, batchMaxSize: 100, tenantHeader: 'X-Customer' } })).updateSystem;
      expect(u2).toEqual({ ...u1, batchPath: null, batchMaxSize: 100, tenantHeader: 'X-Customer' });
      const u3 = (await ok(M.updateSystem, { id: 'crud-sh', i: { sharedBaseUrl: 'http://other.example:8080' } })).updateSystem;
      expect(u3.sharedBaseUrl).toBe('http://other.example:8080');
      expect((await ok(Q.system, { id: 'crud-sh' })).system).toEqual(u3);

      expect((await ok(M.deleteSystem, { id: 'crud-sh' })).deleteSystem).toBe(true);
      expect((await ok(Q.system, { id: 'crud-sh' })).system).toBeNull();
      await refused(M.deleteSystem, { id: 'crud-sh' }, 'NOT_FOUND');
    });

    it.each(BAD_IDS)('refuses the system id %j with BAD_USER_INPUT naming the field', async (id) => {
      await refused(M.createSystem, { i: { id, name: 'x', mode: 'EXCLUSIVE' } }, 'BAD_USER_INPUT', /\bid\b/);
    });

    it('refuses a duplicate system id and keeps the original', async () => {
      await ok(M.createSystem, { i: { id: 'dup-s', name: 'Original', mode: 'EXCLUSIVE', timeoutMs: 1111 } });
      await refused(M.createSystem, { i: { id: 'dup-s', name: 'Impostor', mode: 'SHARED', sharedBaseUrl: 'http://evil.example' } }, 'BAD_USER_INPUT', /already exists/);
      expect((await ok(Q.system, { id: 'dup-s' })).system).toMatchObject({ name: 'Original', mode: 'EXCLUSIVE', timeoutMs: 1111, sharedBaseUrl: null });
    });

    it.each(BAD_URLS)('refuses the sharedBaseUrl %j on create and update', async (url) => {
      await refused(M.createSystem, { i: { id: 'badurl-s', name: 'x', mode: 'SHARED', sharedBaseUrl: url } }, 'BAD_USER_INPUT', /sharedBaseUrl/);
      await refused(M.updateSystem, { id: 'goodurl-s', i: { sharedBaseUrl: url } }, 'BAD_USER_INPUT', /sharedBaseUrl/);
    });

    it('refuses a SHARED system without sharedBaseUrl, and clearing it on update', async () => {
      await refused(M.createSystem, { i: { id: 'nourl-s', name: 'x', mode: 'SHARED' } }, 'BAD_USER_INPUT', /sharedBaseUrl/);
      await ok(M.createSystem, { i: { id: 'keepurl-s', name: 'x', mode: 'SHARED', sharedBaseUrl: 'http://keep.example' } });
      await refused(M.updateSystem, { id: 'keepurl-s', i: { sharedBaseUrl: null } }, 'BAD_USER_INPUT', /sharedBaseUrl/);
    });

    it.each([
      ['timeoutMs', 0],
      ['timeoutMs', 1_000_000_000],
      ['timeoutMs', -5],
      ['batchMaxSize', 0],
      ['batchMaxSize', 101],
    ])('refuses %s = %d on create and update', async (field, value) => {
      await refused(M.createSystem, { i: { id: 'range-s', name: 'x', mode: 'EXCLUSIVE', [field]: value } }, 'BAD_USER_INPUT', new RegExp(field));
      await refused(M.updateSystem, { id: 'range-ok-s', i: { [field]: value } }, 'BAD_USER_INPUT', new RegExp(field));
    });

    it.each(['Authorization', 'authorization', 'Host', 'Content-Length', 'X-Forwarded-For', 'Bad Header', ''])('refuses tenantHeader %j', async (header) => {
      await refused(M.createSystem, { i: { id: 'hdr-s', name: 'x', mode: 'SHARED', sharedBaseUrl: 'http://h.example', tenantHeader: header } }, 'BAD_USER_INPUT', /tenantHeader/);
      await refused(M.updateSystem, { id: 'hdr-ok-s', i: { tenantHeader: header } }, 'BAD_USER_INPUT', /tenantHeader/);
    });

    it('refuses a batchPath that is not a plain path', async () => {
      for (const batchPath of ['batch', '/a/../b', '//evil.example/x', '/a?b=1']) {
        await refused(M.createSystem, { i: { id: 'batch-s', name: 'x', mode: 'EXCLUSIVE', batchPath } }, 'BAD_USER_INPUT', /batchPath/);
      }
    });

    it('answers NOT_FOUND for updating or deleting an unknown system', async () => {
      await refused(M.updateSystem, { id: 'ghost-s', i: { name: 'x' } }, 'NOT_FOUND', /ghost-s/);
      await refused(M.deleteSystem, { id: 'ghost-s' }, 'NOT_FOUND', /ghost-s/);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('bindings and credentials', () => {
    beforeAll(async () => {
      for (const id of ['b-acme', 'b-globex', 'b-initech']) await ok(M.createTenant, { i: { id, name: id } });
      await ok(M.createSystem, { i: { id: 'b-crm', name: 'CRM', mode: 'EXCLUSIVE' } });
      await ok(M.createSystem, { i: { id: 'b-billing', name: 'Billing', mode: 'SHARED', sharedBaseUrl: 'https://billing.example.com/saas' } });
    });

    it('binds an EXCLUSIVE system with its own baseUrl and a BEARER credential, and shows no token', async () => {
      const b = (await ok(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/acme/v1', credential: { kind: 'BEARER', token: 'tok-SECRET-bearer-1' } } })).bindSystem;
      expect(b).toMatchObject({ tenant: { id: 'b-acme' }, system: { id: 'b-crm' }, baseUrl: 'http://127.0.0.1:9/acme/v1', disabled: false, credential: { kind: 'BEARER', headerName: null, expiresAt: null } });
      expectRecent(b.credential.updatedAt);
      expectRecent(b.createdAt);
      expectRecent(b.updatedAt);
      expect((await ok(Q.binding, { t: 'b-acme', s: 'b-crm' })).binding).toEqual(b);
      expect((await ok(Q.tenant, { id: 'b-acme' })).tenant.bindings).toEqual([{ system: { id: 'b-crm' }, baseUrl: 'http://127.0.0.1:9/acme/v1' }]);
      expect((await ok(Q.system, { id: 'b-crm' })).system.bindings).toEqual([{ tenant: { id: 'b-acme' }, baseUrl: 'http://127.0.0.1:9/acme/v1' }]);
    });

    it("gives a SHARED binding the system's sharedBaseUrl unless overridden, and follows changes of it", async () => {
      const inherited = (await ok(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'b-billing', credential: { kind: 'HEADER', headerName: 'X-Api-Key', token: 'tok-SECRET-header-2' } } })).bindSystem;
      expect(inherited.baseUrl).toBe('https://billing.example.com/saas');
      expect(inherited.credential).toMatchObject({ kind: 'HEADER', headerName: 'X-Api-Key' });
      const overridden = (await ok(M.bindSystem, { i: { tenantId: 'b-globex', systemId: 'b-billing', baseUrl: 'https://globex-billing.example.com' } })).bindSystem;
      expect(overridden.baseUrl).toBe('https://globex-billing.example.com');
      expect(overridden.credential).toMatchObject({ kind: 'NONE', headerName: null });

      await ok(M.updateSystem, { id: 'b-billing', i: { sharedBaseUrl: 'https://billing-v2.example.com/saas' } });
      expect((await ok(Q.binding, { t: 'b-acme', s: 'b-billing' })).binding.baseUrl).toBe('https://billing-v2.example.com/saas');
      expect((await ok(Q.binding, { t: 'b-globex', s: 'b-billing' })).binding.baseUrl).toBe('https://globex-billing.example.com');
      expect((await ok(Q.system, { id: 'b-billing' })).system.bindings).toEqual([
        { tenant: { id: 'b-acme' }, baseUrl: 'https://billing-v2.example.com/saas' },
        { tenant: { id: 'b-globex' }, baseUrl: 'https://globex-billing.example.com' },
      ]);
    });

    it('refuses to make a SHARED system EXCLUSIVE while bindings inherit its URL', async () => {
      await refused(M.updateSystem, { id: 'b-billing', i: { mode: 'EXCLUSIVE', sharedBaseUrl: null } }, 'BAD_USER_INPUT', /baseUrl/);
    });

    it('replaces the credential with setCredential, and replaces the whole binding with bindSystem', async () => {
      const before = (await ok(Q.binding, { t: 'b-acme', s: 'b-crm' })).binding;
      await new Promise((r) => setTimeout(r, 20));
      const set = (await ok(M.setCredential, { t: 'b-acme', s: 'b-crm', c: { kind: 'HEADER', headerName: 'X-Crm-Key', token: 'tok-SECRET-header-3' } })).setCredential;
      expect(set.credential).toMatchObject({ kind: 'HEADER', headerName: 'X-Crm-Key' });
      expect(new Date(set.credential.updatedAt).getTime()).toBeGreaterThan(new Date(before.credential.updatedAt).getTime());
      expect(set.baseUrl).toBe(before.baseUrl);
      expect(set.createdAt).toBe(before.createdAt);

      const none = (await ok(M.setCredential, { t: 'b-acme', s: 'b-crm', c: { kind: 'NONE' } })).setCredential;
      expect(none.credential).toMatchObject({ kind: 'NONE', headerName: null });

      await ok(M.setCredential, { t: 'b-acme', s: 'b-crm', c: { kind: 'BEARER', token: 'tok-SECRET-bearer-4' } });
      // bindSystem "creates or replaces": without a credential the binding has none afterwards
      const rebound = (await ok(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/acme/v2' } })).bindSystem;
      expect(rebound).toMatchObject({ baseUrl: 'http://127.0.0.1:9/acme/v2', disabled: false, credential: { kind: 'NONE', headerName: null } });
      expect(rebound.createdAt).toBe(before.createdAt);
      await ok(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/acme/v1', credential: { kind: 'BEARER', token: 'tok-SECRET-bearer-5' } } });
    });

    it('never returns, logs or stores in clear a credential token', async () => {
      const fields = (await ok(`{ __type(name: "CredentialInfo") { fields { name } } }`)).__type.fields.map((f: { name: string }) => f.name);
      // OAuth2 adds the token's state, never the token or the client secret
      expect(fields.sort()).toEqual(['cooldownUntil', 'expiresAt', 'failures', 'headerName', 'kind', 'lastError', 'refreshedAt', 'tokenState', 'updatedAt']);
      // a HEADER token named like a secret field must not leak either
      await refused(M.setCredential, { t: 'b-acme', s: 'b-crm', c: { kind: 'HEADER', headerName: 'Bad Header', token: 'tok-SECRET-header-6' } }, 'BAD_USER_INPUT', /headerName/);
      await refused(M.setCredential, { t: 'b-acme', s: 'b-crm', c: { kind: 'BEARER', token: 'tok-SECRET-\r\nX-Injected: 1' } }, 'BAD_USER_INPUT', /token/);
      await ok(`{ tenants { edges { node { bindings { baseUrl credential { kind headerName updatedAt expiresAt } } } } } }`);
      const everything = seen.join('\n');
      expect(everything).toContain('b-acme');
      expect(everything).not.toContain('tok-SECRET');
      expect(hub.logs.join('\n')).not.toContain('tok-SECRET');
      const rows = await hub.db.query<Record<string, unknown>>(`SELECT * FROM "Binding"`);
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.some((r) => r.credentialCiphertext)).toBe(true);
      expect(JSON.stringify(rows)).not.toContain('tok-SECRET');
    });

    it.each(BAD_URLS)('refuses the binding baseUrl %j and leaves no binding', async (url) => {
      await refused(M.bindSystem, { i: { tenantId: 'b-initech', systemId: 'b-crm', baseUrl: url } }, 'BAD_USER_INPUT', /baseUrl/);
      expect((await ok(Q.binding, { t: 'b-initech', s: 'b-crm' })).binding).toBeNull();
    });

    it('refuses an EXCLUSIVE binding without baseUrl', async () => {
      await refused(M.bindSystem, { i: { tenantId: 'b-initech', systemId: 'b-crm' } }, 'BAD_USER_INPUT', /baseUrl/);
      expect((await ok(Q.binding, { t: 'b-initech', s: 'b-crm' })).binding).toBeNull();
    });

    const badCredentials: [string, Record<string, unknown>, RegExp][] = [
      ['BEARER without token', { kind: 'BEARER' }, /token/],
      ['HEADER without headerName', { kind: 'HEADER', token: 'tok-SECRET-7' }, /headerName/],
      ['HEADER without token', { kind: 'HEADER', headerName: 'X-Key' }, /token/],
      ['BEARER with an empty token', { kind: 'BEARER', token: '' }, /token/],
      ['HEADER on a framing header', { kind: 'HEADER', headerName: 'Content-Length', token: 'tok-SECRET-8' }, /headerName/],
      ['NONE with a token', { kind: 'NONE', token: 'tok-SECRET-9' }, /token/],
      ['OAUTH2_CLIENT_CREDENTIALS without clientSecret', { kind: 'OAUTH2_CLIENT_CREDENTIALS', tokenUrl: 'https://idp.example/token', clientId: 'id' }, /clientSecret is required/],
      ['OAUTH2_CLIENT_CREDENTIALS with user info in tokenUrl', { kind: 'OAUTH2_CLIENT_CREDENTIALS', tokenUrl: 'https://u:tok-SECRET-10@idp.example/token', clientId: 'id', clientSecret: 'tok-SECRET-13' }, /tokenUrl must not contain user info/],
    ];

    it.each(badCredentials)('refuses a credential: %s; bindSystem leaves no binding, setCredential changes nothing', async (_, credential, message) => {
      await refused(M.bindSystem, { i: { tenantId: 'b-initech', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/initech', credential } }, 'BAD_USER_INPUT', message);
      expect((await ok(Q.binding, { t: 'b-initech', s: 'b-crm' })).binding).toBeNull();
      // replacing an existing binding with a bad credential keeps the old one whole
      await refused(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/changed', credential } }, 'BAD_USER_INPUT', message);
      await refused(M.setCredential, { t: 'b-acme', s: 'b-crm', c: credential }, 'BAD_USER_INPUT', message);
      expect((await ok(Q.binding, { t: 'b-acme', s: 'b-crm' })).binding).toMatchObject({ baseUrl: 'http://127.0.0.1:9/acme/v1', credential: { kind: 'BEARER' } });
    });

    it('answers NOT_FOUND for bindings of unknown tenants, systems or pairs', async () => {
      await refused(M.bindSystem, { i: { tenantId: 'ghost-t', systemId: 'b-crm', baseUrl: 'http://127.0.0.1:9/x' } }, 'NOT_FOUND', /ghost-t/);
      await refused(M.bindSystem, { i: { tenantId: 'b-acme', systemId: 'ghost-s', baseUrl: 'http://127.0.0.1:9/x' } }, 'NOT_FOUND', /ghost-s/);
      await refused(M.bindSystem, { i: { tenantId: 'ghost-t', systemId: 'ghost-s', baseUrl: 'http://127.0.0.1:9/x', credential: { kind: 'BEARER', token: 'tok-SECRET-11' } } }, 'NOT_FOUND');
      await refused(M.setCredential, { t: 'b-initech', s: 'b-crm', c: { kind: 'BEARER', token: 'tok-SECRET-12' } }, 'NOT_FOUND');
      await refused(M.setCredential, { t: 'ghost-t', s: 'b-crm', c: { kind: 'NONE' } }, 'NOT_FOUND');
      await refused(M.unbindSystem, { t: 'b-initech', s: 'b-crm' }, 'NOT_FOUND');
      await refused(M.unbindSystem, { t: 'ghost-t', s: 'ghost-s' }, 'NOT_FOUND');
      expect((await ok(Q.binding, { t: 'ghost-t', s: 'b-crm' })).binding).toBeNull();
    });

    it('unbinds a system', async () => {
      await ok(M.bindSystem, { i: { tenantId: 'b-initech', systemId: 'b-billing' } });
      expect((await ok(M.unbindSystem, { t: 'b-initech', s: 'b-billing' })).unbindSystem).toBe(true);
      expect((await ok(Q.binding, { t: 'b-initech', s: 'b-billing' })).binding).toBeNull();
      expect((await ok(Q.tenant, { id: 'b-initech' })).tenant.bindings).toEqual([]);
      await refused(M.unbindSystem, { t: 'b-initech', s: 'b-billing' }, 'NOT_FOUND');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('callers, keys and grants', () => {
    beforeAll(async () => {
      for (const id of ['c-home', 'c-target']) await ok(M.createTenant, { i: { id, name: id } });
      for (const id of ['past-key-c', 'bad-grant-c']) await ok(M.createCaller, { i: { id, name: id } });
      await ok(M.createSystem, { i: { id: 'c-sys', name: 'Sys', mode: 'EXCLUSIVE' } });
    });

    it('creates a caller with its first key, reads, updates and deletes it', async () => {
      const created = (await ok(M.createCaller, { i: { id: 'crud-c', name: 'Portal', tenantId: 'c-home' } })).createCaller;
      const key = created.apiKey as string;
      expect(key).toMatch(/^thub_[0-9A-Za-z]{43}$/);
      expect(created.caller).toMatchObject({ id: 'crud-c', name: 'Portal', role: 'CALLER', disabled: false, tenant: { id: 'c-home' }, grants: [] });
      expect(created.caller.apiKeys).toHaveLength(1);
      const k = created.caller.apiKeys[0];
      expect(key.startsWith(k.prefix)).toBe(true);
      expect(k.prefix.length).toBeLessThan(key.length / 2);
      expect(k).toMatchObject({ revokedAt: null, expiresAt: null });
      expectRecent(k.createdAt);
      expect(JSON.stringify((await ok(Q.caller, { id: 'crud-c' })).caller)).not.toContain(key);

      const viewer = expectData(await hub.gql(`{ viewer { role caller { id } } }`, {}, { key }));
      expect(viewer.viewer).toEqual({ role: 'CALLER', caller: { id: 'crud-c' } });

      const updated = (await ok(M.updateCaller, { id: 'crud-c', i: { name: 'Portal 2', disabled: true } })).updateCaller;
      expect(updated).toMatchObject({ id: 'crud-c', name: 'Portal 2', disabled: true, tenant: { id: 'c-home' } });
      expect((await ok(M.updateCaller, { id: 'crud-c', i: { disabled: false } })).updateCaller).toMatchObject({ name: 'Portal 2', disabled: false });

      await ok(M.grant, { i: { callerId: 'crud-c', tenantId: 'c-target' } });
      expect((await ok(M.deleteCaller, { id: 'crud-c' })).deleteCaller).toBe(true);
      expect((await ok(Q.caller, { id: 'crud-c' })).caller).toBeNull();
      expectError(await hub.gql(`{ viewer { role } }`, {}, { key }), 'UNAUTHENTICATED', { status: 401 });
      const leftovers = await hub.db.query<{ n: number }>(`SELECT (SELECT count(*) FROM "Grant" WHERE "callerId" = 'crud-c') + (SELECT count(*) FROM "ApiKey" WHERE "callerId" = 'crud-c') AS n`);
      expect(Number(leftovers[0]!.n)).toBe(0);
      await refused(M.deleteCaller, { id: 'crud-c' }, 'NOT_FOUND');
    });

    it('generates a caller id when none is given, and creates ADMIN callers on request', async () => {
      const generated = (await ok(M.createCaller, { i: { name: 'No id' } })).createCaller;
      expect(generated.caller.id).toMatch(/\S/);
      expect(generated.caller).toMatchObject({ role: 'CALLER', tenant: null });
      const admin = (await ok(M.createCaller, { i: { id: 'second-admin', name: 'Ops', role: 'ADMIN' } })).createCaller;
      expect(admin.caller.role).toBe('ADMIN');
      const viewer = expectData(await hub.gql(`{ viewer { role } tenants(first: 1) { totalCount } }`, {}, { key: admin.apiKey }));
      expect(viewer.viewer.role).toBe('ADMIN');
    });

    it.each(BAD_IDS)('refuses the caller id %j and creates neither caller nor key', async (id) => {
      await refused(M.createCaller, { i: { id, name: 'x' } }, 'BAD_USER_INPUT', /\bid\b/);
    });

    it('refuses a duplicate caller id without adding a key to the existing caller', async () => {
      await ok(M.createCaller, { i: { id: 'dup-c', name: 'Original' } });
      await refused(M.createCaller, { i: { id: 'dup-c', name: 'Impostor', role: 'ADMIN' } }, 'BAD_USER_INPUT', /already exists/);
      const c = (await ok(Q.caller, { id: 'dup-c' })).caller;
      expect(c).toMatchObject({ name: 'Original', role: 'CALLER' });
      expect(c.apiKeys).toHaveLength(1);
    });

    it('creates no caller and no key for an unknown tenant', async () => {
      const before = (await ok(`{ callers { totalCount } }`)).callers.totalCount;
      const keysBefore = (await rowCounts(hub)).ApiKey;
      await refused(M.createCaller, { i: { id: 'orphan-c', name: 'Orphan', tenantId: 'ghost-t' } }, 'NOT_FOUND', /ghost-t/);
      expect((await ok(`{ callers { totalCount } }`)).callers.totalCount).toBe(before);
      expect((await rowCounts(hub)).ApiKey).toBe(keysBefore);
      expect((await ok(Q.caller, { id: 'orphan-c' })).caller).toBeNull();
    });

    it('answers NOT_FOUND for unknown callers, keys and grants', async () => {
      await refused(M.updateCaller, { id: 'ghost-c', i: { name: 'x' } }, 'NOT_FOUND', /ghost-c/);
      await refused(M.deleteCaller, { id: 'ghost-c' }, 'NOT_FOUND', /ghost-c/);
      await refused(M.issueApiKey, { c: 'ghost-c' }, 'NOT_FOUND', /ghost-c/);
      await refused(M.revokeApiKey, { id: 'ghost-key' }, 'NOT_FOUND');
      await refused(M.revokeGrant, { id: 'ghost-grant' }, 'NOT_FOUND');
      await ok(M.createCaller, { i: { id: 'nf-c', name: 'x' } });
      await refused(M.grant, { i: { callerId: 'ghost-c', tenantId: 'c-target' } }, 'NOT_FOUND', /ghost-c/);
      await refused(M.grant, { i: { callerId: 'nf-c', tenantId: 'ghost-t' } }, 'NOT_FOUND', /ghost-t/);
      await refused(M.grant, { i: { callerId: 'nf-c', tenantId: 'c-target', systemId: 'ghost-s' } }, 'NOT_FOUND', /ghost-s/);
    });

    it('issues further keys and revokes them, keeping the first revocation time', async () => {
      const first = (await ok(M.createCaller, { i: { id: 'keys-c', name: 'Keys' } })).createCaller;
      const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
      const issued = (await ok(M.issueApiKey, { c: 'keys-c', e: expiresAt })).issueApiKey;
      expect(issued.apiKey).toMatch(/^thub_/);
      expect(issued.apiKey).not.toBe(first.apiKey);
      expect(issued.apiKey.startsWith(issued.key.prefix)).toBe(true);
      expect(issued.key).toMatchObject({ revokedAt: null, lastUsedAt: null });
      expect(new Date(issued.key.expiresAt).getTime()).toBe(new Date(expiresAt).getTime());
      const keys = (await ok(Q.caller, { id: 'keys-c' })).caller.apiKeys;
      expect(keys.map((k: { id: string }) => k.id).sort()).toEqual([first.caller.apiKeys[0].id, issued.key.id].sort());

      const revoked = (await ok(M.revokeApiKey, { id: issued.key.id })).revokeApiKey;
      expect(revoked.id).toBe(issued.key.id);
      expectRecent(revoked.revokedAt);
      await new Promise((r) => setTimeout(r, 20));
      expect((await ok(M.revokeApiKey, { id: issued.key.id })).revokeApiKey.revokedAt).toBe(revoked.revokedAt);
      expectError(await hub.gql(`{ viewer { role } }`, {}, { key: issued.apiKey }), 'UNAUTHENTICATED', { status: 401 });
      expectData(await hub.gql(`{ viewer { role } }`, {}, { key: first.apiKey }));
    });

    it('refuses issuing a key that expires in the past', async () => {
      await refused(M.issueApiKey, { c: 'past-key-c', e: new Date(Date.now() - 60_000).toISOString() }, 'BAD_USER_INPUT', /expiresAt/);
    });

    it('grants, lists and revokes grants with the documented fields', async () => {
      await ok(M.createCaller, { i: { id: 'grant-c', name: 'Grantee', tenantId: 'c-home' } });
      const wide = (await ok(M.grant, { i: { callerId: 'grant-c', tenantId: 'c-target' } })).grant;
      expect(wide).toMatchObject({ caller: { id: 'grant-c' }, tenant: { id: 'c-target' }, system: null, methods: null, pathPrefix: null, expiresAt: null });
      expectRecent(wide.createdAt);
      const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
      const narrow = (await ok(M.grant, { i: { callerId: 'grant-c', tenantId: 'c-target', systemId: 'c-sys', methods: ['GET', 'POST', 'GET'], pathPrefix: '/patients', expiresAt } })).grant;
      expect(narrow).toMatchObject({ caller: { id: 'grant-c' }, tenant: { id: 'c-target' }, system: { id: 'c-sys' }, pathPrefix: '/patients' });
      expect([...narrow.methods].sort()).toEqual(['GET', 'POST']);
      expect(new Date(narrow.expiresAt).getTime()).toBe(new Date(expiresAt).getTime());

      const listed = (await ok(Q.caller, { id: 'grant-c' })).caller.grants;
      expect(listed.map((g: { id: string }) => g.id).sort()).toEqual([wide.id, narrow.id].sort());
      expect(listed.find((g: { id: string }) => g.id === narrow.id)).toEqual(narrow);

      expect((await ok(M.revokeGrant, { id: wide.id })).revokeGrant).toBe(true);
      expect((await ok(Q.caller, { id: 'grant-c' })).caller.grants.map((g: { id: string }) => g.id)).toEqual([narrow.id]);
      await refused(M.revokeGrant, { id: wide.id }, 'NOT_FOUND');
    });

    it.each([
      ['methods: []', { methods: [] }, /methods/],
      ['expiresAt in the past', { expiresAt: '2001-01-01T00:00:00Z' }, /expiresAt/],
      ['expiresAt now-ish', { expiresAt: 'NOW' }, /expiresAt/],
      ['pathPrefix without a leading slash', { pathPrefix: 'patients' }, /pathPrefix/],
      ['pathPrefix with ..', { pathPrefix: '/a/../b' }, /pathPrefix/],
    ])('refuses a grant with %s', async (_, extra, message) => {
      const input = { callerId: 'bad-grant-c', tenantId: 'c-target', ...extra } as Record<string, unknown>;
      if (input.expiresAt === 'NOW') input.expiresAt = new Date(Date.now() - 1).toISOString();
      await refused(M.grant, { i: input }, 'BAD_USER_INPUT', message);
      expect((await ok(Q.caller, { id: 'bad-grant-c' })).caller.grants).toEqual([]);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('deleting tenants and systems', () => {
    beforeAll(async () => {
      for (const id of ['d-doomed', 'd-member-home', 'd-other', 'd-third']) await ok(M.createTenant, { i: { id, name: id } });
      await ok(M.createSystem, { i: { id: 'd-ex', name: 'Ex', mode: 'EXCLUSIVE' } });
      await ok(M.createSystem, { i: { id: 'd-sh', name: 'Sh', mode: 'SHARED', sharedBaseUrl: 'http://d-sh.example' } });
    });

    it('deletes a tenant with its bindings and the grants on it, leaving everything else', async () => {
      await ok(M.bindSystem, { i: { tenantId: 'd-doomed', systemId: 'd-ex', baseUrl: 'http://d.example/doomed', credential: { kind: 'BEARER', token: 'tok-SECRET-d' } } });
      await ok(M.bindSystem, { i: { tenantId: 'd-doomed', systemId: 'd-sh' } });
      await ok(M.bindSystem, { i: { tenantId: 'd-other', systemId: 'd-ex', baseUrl: 'http://d.example/other' } });
      await ok(M.createCaller, { i: { id: 'd-outsider', name: 'Outsider' } });
      await ok(M.grant, { i: { callerId: 'd-outsider', tenantId: 'd-doomed' } });
      await ok(M.grant, { i: { callerId: 'd-outsider', tenantId: 'd-doomed', systemId: 'd-ex' } });
      const onOther = (await ok(M.grant, { i: { callerId: 'd-outsider', tenantId: 'd-other' } })).grant;

      expect((await ok(M.deleteTenant, { id: 'd-doomed' })).deleteTenant).toBe(true);
      expect((await ok(Q.tenant, { id: 'd-doomed' })).tenant).toBeNull();
      expect((await ok(Q.binding, { t: 'd-doomed', s: 'd-ex' })).binding).toBeNull();
      expect((await ok(Q.system, { id: 'd-ex' })).system.bindings).toEqual([{ tenant: { id: 'd-other' }, baseUrl: 'http://d.example/other' }]);
      expect((await ok(Q.system, { id: 'd-sh' })).system.bindings).toEqual([]);
      expect((await ok(Q.caller, { id: 'd-outsider' })).caller.grants.map((g: { id: string }) => g.id)).toEqual([onOther.id]);
      const rows = await hub.db.query<{ n: number }>(`SELECT (SELECT count(*) FROM "Binding" WHERE "tenantId" = 'd-doomed') + (SELECT count(*) FROM "Grant" WHERE "tenantId" = 'd-doomed') AS n`);
      expect(Number(rows[0]!.n)).toBe(0);

      // A new tenant under the same id starts empty.
      expect((await ok(M.createTenant, { i: { id: 'd-doomed', name: 'Reborn' } })).createTenant.bindings).toEqual([]);
      expect((await ok(Q.caller, { id: 'd-outsider' })).caller.grants).toHaveLength(1);
    });

    it('refuses to delete a tenant while a caller belongs to it', async () => {
      await ok(M.bindSystem, { i: { tenantId: 'd-member-home', systemId: 'd-ex', baseUrl: 'http://d.example/home' } });
      await ok(M.createCaller, { i: { id: 'd-member', name: 'Member', tenantId: 'd-member-home' } });
      await ok(M.grant, { i: { callerId: 'd-member', tenantId: 'd-other' } });
      await refused(M.deleteTenant, { id: 'd-member-home' }, 'BAD_USER_INPUT', /caller/i);
      expect((await ok(Q.tenant, { id: 'd-member-home' })).tenant.bindings).toHaveLength(1);
      expect((await ok(Q.caller, { id: 'd-member' })).caller.tenant).toEqual({ id: 'd-member-home' });

      expect((await ok(M.deleteCaller, { id: 'd-member' })).deleteCaller).toBe(true);
      expect((await ok(M.deleteTenant, { id: 'd-member-home' })).deleteTenant).toBe(true);
      expect((await ok(Q.tenant, { id: 'd-member-home' })).tenant).toBeNull();
    });

    it('deletes a system with its bindings and the grants that name it', async () => {
      await ok(M.createSystem, { i: { id: 'd-gone', name: 'Gone', mode: 'EXCLUSIVE' } });
      await ok(M.bindSystem, { i: { tenantId: 'd-other', systemId: 'd-gone', baseUrl: 'http://d.example/gone' } });
      await ok(M.bindSystem, { i: { tenantId: 'd-third', systemId: 'd-gone', baseUrl: 'http://d.example/gone2' } });
      await ok(M.createCaller, { i: { id: 'd-sys-grantee', name: 'x' } });
      const named = (await ok(M.grant, { i: { callerId: 'd-sys-grantee', tenantId: 'd-other', systemId: 'd-gone' } })).grant;
      const tenantWide = (await ok(M.grant, { i: { callerId: 'd-sys-grantee', tenantId: 'd-other' } })).grant;
      expect(named.id).not.toBe(tenantWide.id);

      expect((await ok(M.deleteSystem, { id: 'd-gone' })).deleteSystem).toBe(true);
      expect((await ok(Q.system, { id: 'd-gone' })).system).toBeNull();
      expect((await ok(Q.binding, { t: 'd-other', s: 'd-gone' })).binding).toBeNull();
      expect((await ok(Q.tenant, { id: 'd-other' })).tenant.bindings.map((b: { system: { id: string } }) => b.system.id)).toEqual(['d-ex']);
      expect((await ok(Q.tenant, { id: 'd-third' })).tenant.bindings).toEqual([]);
      expect((await ok(Q.caller, { id: 'd-sys-grantee' })).caller.grants.map((g: { id: string }) => g.id)).toEqual([tenantWide.id]);
      const rows = await hub.db.query<{ n: number }>(`SELECT count(*) AS n FROM "Binding" WHERE "systemId" = 'd-gone'`);
      expect(Number(rows[0]!.n)).toBe(0);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('pagination (a hub of its own)', () => {
    let phub: TestHub;

    beforeAll(async () => {
      phub = await startTestHub(kind);
      // Created out of order: the lists are in id order.
      for (const n of [5, 2, 7, 1, 4, 6, 3]) {
        await phub.admin(`mutation { createTenant(input: { id: "t${n}", name: "T${n}" }) { id } }`);
        await phub.admin(`mutation { createSystem(input: { id: "s${n}", name: "S${n}", mode: EXCLUSIVE }) { id } }`);
        // "admin" exists from the start: 6 more make 7 callers
        if (n !== 7) await phub.admin(`mutation { createCaller(input: { id: "c${n}", name: "C${n}" }) { apiKey } }`);
      }
    });
    afterAll(async () => {
      await phub?.close();
    });

    const lists = [
      ['tenants', ['t1', 't2', 't3', 't4', 't5', 't6', 't7']],
      ['systems', ['s1', 's2', 's3', 's4', 's5', 's6', 's7']],
      ['callers', ['admin', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']],
    ] as const;
    const page = (list: string) => `query($first: Int, $after: String) { ${list}(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`;

    it.each(lists)('pages through %s three at a time', async (list, ids) => {
      const seenIds: string[] = [];
      const pages: { n: number; hasNextPage: boolean; totalCount: number }[] = [];
      let after: string | null = null;
      for (let i = 0; i < 5; i++) {
        const data: any = expectData(await phub.gql(page(list), { first: 3, after }))[list];
        const edges = data.edges as { cursor: string; node: { id: string } }[];
        pages.push({ n: edges.length, hasNextPage: data.pageInfo.hasNextPage, totalCount: data.totalCount });
        seenIds.push(...edges.map((e) => e.node.id));
        expect(data.pageInfo.endCursor).toBe(edges.at(-1)?.cursor ?? null);
        if (!data.pageInfo.hasNextPage) break;
        after = data.pageInfo.endCursor;
      }
      expect(pages).toEqual([
        { n: 3, hasNextPage: true, totalCount: 7 },
        { n: 3, hasNextPage: true, totalCount: 7 },
        { n: 1, hasNextPage: false, totalCount: 7 },
      ]);
      expect(seenIds).toEqual([...ids]);
    });

    it.each(lists)('gets hasNextPage right at the edges of %s', async (list, ids) => {
      const all = expectData(await phub.gql(page(list), { first: 7 }))[list];
      expect(all.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([...ids]);
      expect(all.pageInfo.hasNextPage).toBe(false);
      const six = expectData(await phub.gql(page(list), { first: 6 }))[list];
      expect(six.pageInfo.hasNextPage).toBe(true);
      const last = expectData(await phub.gql(page(list), { first: 1, after: six.pageInfo.endCursor }))[list];
      expect(last.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([ids[6]]);
      expect(last.pageInfo.hasNextPage).toBe(false);
      const beyond = expectData(await phub.gql(page(list), { first: 3, after: last.pageInfo.endCursor }))[list];
      expect(beyond.edges).toEqual([]);
      expect(beyond.pageInfo).toEqual({ hasNextPage: false, endCursor: null });
      expect(beyond.totalCount).toBe(7);
      const dflt = expectData(await phub.gql(page(list), {}))[list];
      expect(dflt.edges).toHaveLength(7);
    });

    it.each(lists)('refuses first: 0 / 1000 / -1 and invalid cursors on %s', async (list) => {
      for (const first of [0, 1000, -1]) expectError(await phub.gql(page(list), { first }), 'BAD_USER_INPUT', { message: /first/ });
      expectData(await phub.gql(page(list), { first: 500 }));
      for (const after of ['not a cursor!', '', '%%%', '====']) expectError(await phub.gql(page(list), { first: 3, after }), 'BAD_USER_INPUT', { message: /after|cursor/ });
    });

    it('refuses first: 0 / 1000 on invocations too', async () => {
      for (const first of [0, 1000]) expectError(await phub.gql(`query($first: Int) { invocations(first: $first) { totalCount } }`, { first }), 'BAD_USER_INPUT', { message: /first/ });
      expectError(await phub.gql(`{ invocations(first: 3, after: "not a cursor!") { totalCount } }`), 'BAD_USER_INPUT');
    });
  });
});

// Registry writes check what they depend on, then write: a write of another request in between
// must not slip past the check (src/registry/row-locks.ts). Each test holds the first write's
// insert behind a table lock, after its check, and starts the second meanwhile.
describe.runIf(testDatabases().includes('postgres'))('registry writes that race on PostgreSQL', () => {
  type Outcome = 'ok' | string;
  /**
   * A fresh database and hub, set up with `setup`; `first` runs until its insert into `table`
   * waits, `second` until it waits too or settles; then the table is released.
   */
  async function race(setup: string[], table: string, first: string, second: string, check: (db: TestDatabase) => Promise<void>): Promise<[Outcome, Outcome]> {
    const db = await createTestDatabase('postgres');
    const hub = await startTestHub('postgres', { db });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      for (const q of setup) await hub.admin(q);
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE "${table}" IN SHARE ROW EXCLUSIVE MODE`);
      const one = hub.gql(first);
      await lockWaiters(db);
      let settled = false;
      const two = hub.gql(second).finally(() => (settled = true));
      await lockWaiters(db, { count: 2, settled: () => settled });
      await holder.query('ROLLBACK');
      const results = await Promise.all([one, two]);
      await check(db);
      return results.map((r) => r.body.errors?.[0]?.extensions?.code ?? 'ok') as [Outcome, Outcome];
    } finally {
      await holder.end();
      await hub.close();
      await db.drop();
    }
  }

  it('a binding without an address and a switch to EXCLUSIVE: the switch is refused', { timeout: 60_000 }, async () => {
    const outcome = await race(
      [`mutation { createTenant(input: { id: "t-race", name: "T" }) { id } }`, `mutation { createSystem(input: { id: "s-race", name: "S", mode: SHARED, sharedBaseUrl: "http://127.0.0.1:9/shared" }) { id } }`],
      'Binding',
      `mutation { bindSystem(input: { tenantId: "t-race", systemId: "s-race" }) { baseUrl } }`,
      `mutation { updateSystem(id: "s-race", input: { mode: EXCLUSIVE, sharedBaseUrl: null }) { mode } }`,
      async (db) => {
        const rows = await db.query(`SELECT s."mode"::text AS mode, (SELECT count(*)::int FROM "Binding" b WHERE b."systemId" = s."id" AND b."baseUrl" IS NULL) AS orphans FROM "System" s`);
        expect(rows).toEqual([{ mode: 'SHARED', orphans: 1 }]);
      },
    );
    expect(outcome).toEqual(['ok', 'BAD_USER_INPUT']);
  });

  it('a grant given while its caller is deleted: both succeed, and the grant goes with the caller', { timeout: 60_000 }, async () => {
    const outcome = await race(
      [`mutation { createTenant(input: { id: "t-fk", name: "T" }) { id } }`, `mutation { createCaller(input: { id: "c-fk", name: "C" }) { apiKey } }`],
      'Grant',
      `mutation { grant(input: { callerId: "c-fk", tenantId: "t-fk" }) { id } }`,
      `mutation { deleteCaller(id: "c-fk") }`,
      async (db) => {
        expect(await db.query(`SELECT "id" FROM "Caller" WHERE "id" = 'c-fk' UNION ALL SELECT "id" FROM "Grant"`)).toEqual([]);
      },
    );
    expect(outcome).toEqual(['ok', 'ok']);
  });

  it('a caller created for a tenant being deleted: the delete is refused, as while callers belong to it', { timeout: 60_000 }, async () => {
    const outcome = await race(
      [`mutation { createTenant(input: { id: "t-del", name: "T" }) { id } }`],
      'Caller',
      `mutation { createCaller(input: { id: "c-del", name: "C", tenantId: "t-del" }) { apiKey } }`,
      `mutation { deleteTenant(id: "t-del") }`,
      async (db) => {
        expect(await db.query(`SELECT "id", "tenantId" FROM "Caller" WHERE "id" = 'c-del'`)).toEqual([{ id: 'c-del', tenantId: 't-del' }]);
      },
    );
    expect(outcome).toEqual(['ok', 'BAD_USER_INPUT']);
  });
});

// Under REPEATABLE READ as the database's default, a statement that waited for a row another
// session changed fails with a serialization error, which callers saw as INTERNAL_SERVER_ERROR.
// Transactions Prisma opens on its own now run READ COMMITTED, and single statements outside a
// transaction are sent again (src/db/isolation.ts). Each test changes a row in another session's
// open transaction, starts the mutation, and commits once the mutation waits for that row.
describe.runIf(testDatabases().includes('postgres'))('registry writes on a REPEATABLE READ database', () => {
  async function whileRowChanges(t: { setup: string[]; change: string; mutation: (db: TestDatabase) => Promise<string>; check: (db: TestDatabase) => Promise<void> }): Promise<GqlResponse> {
    const db = await createTestDatabase('postgres');
    await repeatableReadByDefault(db);
    const hub = await startTestHub('postgres', { db });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      for (const q of t.setup) await hub.admin(q);
      const mutation = await t.mutation(db);
      await holder.query('BEGIN');
      await holder.query(t.change);
      const pending = hub.gql(mutation);
      await lockWaiters(db);
      await holder.query('COMMIT');
      const res = await pending;
      await t.check(db);
      return res;
    } finally {
      await holder.end();
      await hub.close();
      await db.drop();
    }
  }

  it("revokes an API key while another session updates the key's row (a transaction Prisma opens itself)", { timeout: 60_000 }, async () => {
    const res = await whileRowChanges({
      setup: [`mutation { createCaller(input: { id: "c-rr", name: "C" }) { apiKey } }`],
      change: `UPDATE "ApiKey" SET "lastUsedAt" = now() WHERE "callerId" = 'c-rr'`,
      mutation: async (db) => {
        const id = (await db.query<{ id: string }>(`SELECT "id" FROM "ApiKey" WHERE "callerId" = 'c-rr'`))[0]!.id;
        return `mutation { revokeApiKey(id: "${id}") { revokedAt } }`;
      },
      check: async (db) => {
        expect(await db.query(`SELECT "revokedAt" IS NOT NULL AS revoked, "lastUsedAt" IS NOT NULL AS touched FROM "ApiKey" WHERE "callerId" = 'c-rr'`)).toEqual([{ revoked: true, touched: true }]);
      },
    });
    expect(res.body.errors).toBeUndefined();
  });

  it("renames a tenant while another session disables it (a single statement, sent again)", { timeout: 60_000 }, async () => {
    const res = await whileRowChanges({
      setup: [`mutation { createTenant(input: { id: "t-rr", name: "Old" }) { id } }`],
      change: `UPDATE "Tenant" SET "disabled" = true WHERE "id" = 't-rr'`,
      mutation: async () => `mutation { updateTenant(id: "t-rr", input: { name: "New" }) { name } }`,
      check: async (db) => {
        expect(await db.query(`SELECT "name", "disabled" FROM "Tenant" WHERE "id" = 't-rr'`)).toEqual([{ name: 'New', disabled: true }]);
      },
    });
    expect(res.body.errors).toBeUndefined();
  });
});

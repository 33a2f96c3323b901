// Who may do what: API-key authentication, the ADMIN/CALLER split over every registry operation,
// and the grants that decide which (tenant, system, method, path) a caller reaches.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { expectData, expectError, registrySnapshot, rowCounts } from './helpers/registry-snapshot.js';
import { createCallerWithGrant, INVOKE_MUTATION, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const VIEWER = `{ viewer { role caller { id } } }`;

/** Sleeps until `when` (an ISO time or Date) is at least `marginMs` in the past. */
async function waitUntilPast(when: string | Date, marginMs = 150) {
  const wait = new Date(when).getTime() + marginMs - Date.now();
  if (wait > 0) await sleep(wait);
}

describe.each(testDatabases())('access on %s', (kind) => {
  let hub: TestHub;
  let up: Upstream;

  beforeAll(async () => {
    up = await startUpstream();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/acme-crm`, token: 'acme-crm-secret-token' });
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'erp', baseUrl: `${up.url}/acme-erp` });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: `${up.url}/globex-crm` });
    await hub.admin(`mutation { createTenant(input: { id: "initech", name: "Initech" }) { id } }`);
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  const invokeQ = (key: string | null, t: string, s: string, path: string, method = 'GET') => hub.gql(INVOKE_QUERY, { t, s, p: { method, path } }, { key });
  const invokeM = (key: string | null, t: string, s: string, path: string, method = 'POST') => hub.gql(INVOKE_MUTATION, { t, s, p: { method, path } }, { key });
  const sentTo = (prefix: string) => up.requests.filter((r) => r.url.startsWith(prefix)).map((r) => `${r.method} ${r.url}`);

  async function apiKeyIdOf(callerId: string, key: string): Promise<string> {
    const data = await hub.admin(`query($id: ID!) { caller(id: $id) { apiKeys { id prefix } } }`, { id: callerId });
    const matches = (data.caller.apiKeys as { id: string; prefix: string }[]).filter((k) => key.startsWith(k.prefix));
    expect(matches).toHaveLength(1);
    return matches[0]!.id;
  }

  // ---------------------------------------------------------------------------------------------
  describe('authentication', () => {
    const expect401 = (res: Awaited<ReturnType<TestHub['gql']>>) => {
      expectError(res, 'UNAUTHENTICATED', { status: 401 });
      expect(res.body.data ?? null).toBeNull();
    };

    it('accepts the admin key (control for the refusals below)', async () => {
      const res = await hub.gql(VIEWER);
      expect(expectData(res).viewer.role).toBe('ADMIN');
    });

    it('refuses a request without an Authorization header with 401 UNAUTHENTICATED', async () => {
      expect401(await hub.gql(VIEWER, {}, { key: null }));
    });

    it('refuses an unauthenticated mutation and writes nothing', async () => {
      const before = await rowCounts(hub);
      expect401(await hub.gql(`mutation { createTenant(input: { id: "anon-t", name: "x" }) { id } }`, {}, { key: null }));
      expect401(await hub.gql(`mutation { createTenant(input: { id: "anon-t", name: "x" }) { id } }`, {}, { key: null, headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }));
      expect(await rowCounts(hub)).toEqual(before);
      expect((await hub.admin(`{ tenant(id: "anon-t") { id } }`)).tenant).toBeNull();
    });

    it.each([['Basic x'], ['Bearer'], ['Bearer '], ['bearer-token-without-scheme'], ['Token abcdefghijklmnopqrstuvwxyz0123456789']])(
      'refuses the malformed header %j',
      async (header) => {
        expect401(await hub.gql(VIEWER, {}, { key: null, headers: { authorization: header } }));
      },
    );

    it('refuses the admin key sent under another scheme', async () => {
      expect401(await hub.gql(VIEWER, {}, { key: null, headers: { authorization: `Basic ${hub.adminKey}` } }));
    });

    it('refuses unknown keys', async () => {
      expect401(await hub.gql(VIEWER, {}, { key: `thub_${'A'.repeat(43)}` }));
      expect401(await hub.gql(VIEWER, {}, { key: `thub_${'z'.repeat(20)}` }));
      expect401(await hub.gql(VIEWER, {}, { key: 'x'.repeat(64) }));
      expect401(await hub.gql(VIEWER, {}, { key: `${hub.adminKey}x` }));
      expect401(await hub.gql(VIEWER, {}, { key: hub.adminKey.slice(0, -1) }));
    });

    it('refuses a revoked key from the next request on', async () => {
      const key = await createCallerWithGrant(hub, { id: 'auth-revoked', grants: [] });
      expect(expectData(await hub.gql(VIEWER, {}, { key })).viewer.caller.id).toBe('auth-revoked');
      const id = await apiKeyIdOf('auth-revoked', key);
      const revoked = await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`, { id });
      expect(revoked.revokeApiKey.revokedAt).toBeTruthy();
      expect401(await hub.gql(VIEWER, {}, { key }));
      expect401(await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/x' } }, { key }));
    });

    it('refuses an expired key once its expiry has passed', async () => {
      await createCallerWithGrant(hub, { id: 'auth-expiring', grants: [] });
      const expiresAt = new Date(Date.now() + 2000).toISOString();
      const issued = await hub.admin(`mutation($c: ID!, $e: DateTime) { issueApiKey(callerId: $c, expiresAt: $e) { apiKey key { expiresAt } } }`, { c: 'auth-expiring', e: expiresAt });
      const key = issued.issueApiKey.apiKey as string;
      expect(new Date(issued.issueApiKey.key.expiresAt).getTime()).toBe(new Date(expiresAt).getTime());
      expect(expectData(await hub.gql(VIEWER, {}, { key })).viewer.caller.id).toBe('auth-expiring');
      await waitUntilPast(expiresAt);
      expect401(await hub.gql(VIEWER, {}, { key }));
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('roles: the registry is admin-only', () => {
    let callerKey: string;

    beforeAll(async () => {
      // A caller that even holds a grant: grants are about invoking, never about the registry.
      callerKey = await createCallerWithGrant(hub, { id: 'mx-caller', tenantId: 'globex', grants: [{ tenantId: 'acme' }] });
      await createCallerWithGrant(hub, { id: 'mx-other', grants: [] });
    });

    interface QueryOp {
      field: string;
      doc: string;
      vars?: Record<string, unknown>;
      /** what only an admin may learn; must not appear in the caller's response */
      secret: string;
    }
    const queryOps: QueryOp[] = [
      { field: 'tenant', doc: `query($id: ID!) { tenant(id: $id) { id name } }`, vars: { id: 'acme' }, secret: 'Tenant acme' },
      { field: 'system', doc: `query($id: ID!) { system(id: $id) { id name timeoutMs } }`, vars: { id: 'erp' }, secret: '"erp"' },
      { field: 'binding', doc: `query($t: ID!, $s: ID!) { binding(tenantId: $t, systemId: $s) { baseUrl credential { kind } } }`, vars: { t: 'acme', s: 'crm' }, secret: '/acme-crm' },
      { field: 'caller', doc: `query($id: ID!) { caller(id: $id) { id name apiKeys { prefix } } }`, vars: { id: 'mx-other' }, secret: 'thub_' },
      { field: 'tenants', doc: `{ tenants(first: 50) { totalCount edges { node { id name } } } }`, secret: 'Tenant globex' },
      { field: 'systems', doc: `{ systems(first: 50) { totalCount edges { node { id } } } }`, secret: '"erp"' },
      { field: 'callers', doc: `{ callers(first: 50) { totalCount edges { node { id } } } }`, secret: 'mx-other' },
      { field: 'verifyInvocationChain', doc: `{ verifyInvocationChain { ok checked firstBrokenId } }`, secret: '"checked"' },
      { field: 'verifyInvocationChainFrom', doc: `query($h: String!) { verifyInvocationChainFrom(fromHash: $h) { ok checked firstBrokenId } }`, vars: { h: '0'.repeat(64) }, secret: '"checked"' },
    ];

    it.each(queryOps)('Query.$field: CALLER gets FORBIDDEN and no data; ADMIN gets the answer', async ({ field, doc, vars, secret }) => {
      const refused = await hub.gql(doc, vars, { key: callerKey });
      expectError(refused, 'FORBIDDEN');
      expect(refused.body.data?.[field] ?? null).toBeNull();
      expect(JSON.stringify(refused.body)).not.toContain(secret);

      const allowed = expectData(await hub.gql(doc, vars));
      expect(allowed[field]).toBeTruthy();
      expect(JSON.stringify(allowed)).toContain(secret);
    });

    interface MutationOp {
      field: string;
      doc: string;
      /** creates what the operation acts on (unique ids per operation) and returns its variables */
      setup: () => Promise<Record<string, unknown>>;
    }
    const mutationOps: MutationOp[] = [
      { field: 'createTenant', doc: `mutation($i: CreateTenantInput!) { createTenant(input: $i) { id } }`, setup: async () => ({ i: { id: 'mx-new-t', name: 'New' } }) },
      {
        field: 'updateTenant',
        doc: `mutation($id: ID!) { updateTenant(id: $id, input: { name: "Renamed", disabled: true }) { id name disabled } }`,
        setup: async () => {
          await hub.admin(`mutation { createTenant(input: { id: "mx-upd-t", name: "Before" }) { id } }`);
          return { id: 'mx-upd-t' };
        },
      },
      {
        field: 'deleteTenant',
        doc: `mutation($id: ID!) { deleteTenant(id: $id) }`,
        setup: async () => {
          await hub.admin(`mutation { createTenant(input: { id: "mx-del-t", name: "Doomed" }) { id } }`);
          return { id: 'mx-del-t' };
        },
      },
      {
        field: 'createSystem',
        doc: `mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`,
        setup: async () => ({ i: { id: 'mx-new-s', name: 'New', mode: 'SHARED', sharedBaseUrl: `${up.url}/evil` } }),
      },
      {
        field: 'updateSystem',
        doc: `mutation($id: ID!) { updateSystem(id: $id, input: { timeoutMs: 1234, name: "Renamed" }) { id timeoutMs } }`,
        setup: async () => {
          await hub.admin(`mutation { createSystem(input: { id: "mx-upd-s", name: "Before", mode: EXCLUSIVE }) { id } }`);
          return { id: 'mx-upd-s' };
        },
      },
      {
        field: 'deleteSystem',
        doc: `mutation($id: ID!) { deleteSystem(id: $id) }`,
        setup: async () => {
          await hub.admin(`mutation { createSystem(input: { id: "mx-del-s", name: "Doomed", mode: EXCLUSIVE }) { id } }`);
          return { id: 'mx-del-s' };
        },
      },
      {
        field: 'bindSystem',
        doc: `mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`,
        setup: async () => {
          await hub.admin(`mutation { createTenant(input: { id: "mx-bind-t", name: "Bind" }) { id } }`);
          return { i: { tenantId: 'mx-bind-t', systemId: 'crm', baseUrl: `${up.url}/attacker`, credential: { kind: 'BEARER', token: 'stolen' } } };
        },
      },
      {
        field: 'setCredential',
        doc: `mutation($t: ID!, $s: ID!, $c: CredentialInput!) { setCredential(tenantId: $t, systemId: $s, credential: $c) { credential { kind headerName } } }`,
        setup: async () => {
          await seedExclusive(hub, { tenantId: 'mx-cred-t', systemId: 'crm', baseUrl: `${up.url}/mx-cred`, token: 'original' });
          return { t: 'mx-cred-t', s: 'crm', c: { kind: 'HEADER', headerName: 'X-Api-Key', token: 'replaced' } };
        },
      },
      {
        field: 'unbindSystem',
        doc: `mutation($t: ID!, $s: ID!) { unbindSystem(tenantId: $t, systemId: $s) }`,
        setup: async () => {
          await seedExclusive(hub, { tenantId: 'mx-unbind-t', systemId: 'crm', baseUrl: `${up.url}/mx-unbind` });
          return { t: 'mx-unbind-t', s: 'crm' };
        },
      },
      {
        field: 'createCaller',
        doc: `mutation($i: CreateCallerInput!) { createCaller(input: $i) { apiKey caller { id role } } }`,
        setup: async () => ({ i: { id: 'mx-new-admin', name: 'Sneaky', role: 'ADMIN' } }),
      },
      {
        field: 'updateCaller',
        doc: `mutation($id: ID!) { updateCaller(id: $id, input: { name: "Renamed", disabled: true }) { id name disabled } }`,
        setup: async () => {
          await createCallerWithGrant(hub, { id: 'mx-upd-c', grants: [] });
          return { id: 'mx-upd-c' };
        },
      },
      {
        field: 'deleteCaller',
        doc: `mutation($id: ID!) { deleteCaller(id: $id) }`,
        setup: async () => {
          await createCallerWithGrant(hub, { id: 'mx-del-c', grants: [] });
          return { id: 'mx-del-c' };
        },
      },
      // A caller minting itself another key.
      { field: 'issueApiKey', doc: `mutation($c: ID!) { issueApiKey(callerId: $c) { apiKey key { id } } }`, setup: async () => ({ c: 'mx-caller' }) },
      {
        field: 'revokeApiKey',
        doc: `mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`,
        setup: async () => {
          const key = await createCallerWithGrant(hub, { id: 'mx-rev-c', grants: [] });
          return { id: await apiKeyIdOf('mx-rev-c', key) };
        },
      },
      // A caller granting itself another tenant.
      { field: 'grant', doc: `mutation($i: GrantInput!) { grant(input: $i) { id } }`, setup: async () => ({ i: { callerId: 'mx-caller', tenantId: 'initech' } }) },
      {
        field: 'revokeGrant',
        doc: `mutation($id: ID!) { revokeGrant(id: $id) }`,
        setup: async () => {
          await createCallerWithGrant(hub, { id: 'mx-grantee', grants: [{ tenantId: 'acme' }] });
          const data = await hub.admin(`{ caller(id: "mx-grantee") { grants { id } } }`);
          return { id: data.caller.grants[0].id };
        },
      },
    ];

    it('covers every registry mutation of the schema', async () => {
      const data = await hub.admin(`{ __type(name: "Mutation") { fields { name } } }`);
      // rotateEncryptionKey changes no registry data a snapshot sees: it has its own test below.
      const all = (data.__type.fields as { name: string }[]).map((f) => f.name).filter((n) => n !== 'invoke' && n !== 'rotateEncryptionKey');
      expect(all.sort()).toEqual(mutationOps.map((o) => o.field).sort());
    });

    it('Mutation.rotateEncryptionKey: CALLER gets FORBIDDEN; ADMIN succeeds', async () => {
      const refused = await hub.gql(`mutation { rotateEncryptionKey { rotated keyId } }`, {}, { key: callerKey });
      expectError(refused, 'FORBIDDEN');
      const allowed = expectData(await hub.gql(`mutation { rotateEncryptionKey { rotated keyId } }`));
      expect(allowed.rotateEncryptionKey.keyId).toMatch(/^[0-9a-f]{12}$/);
    });

    it.each(mutationOps)('Mutation.$field: CALLER gets FORBIDDEN and nothing changes; ADMIN succeeds', async ({ field, doc, setup }) => {
      const vars = await setup();
      const before = await registrySnapshot(hub);
      const countsBefore = await rowCounts(hub);

      const refused = await hub.gql(doc, vars, { key: callerKey });
      expectError(refused, 'FORBIDDEN');
      expect(refused.body.data?.[field] ?? null).toBeNull();
      expect(await registrySnapshot(hub)).toEqual(before);
      expect(await rowCounts(hub)).toEqual(countsBefore);

      const allowed = expectData(await hub.gql(doc, vars));
      expect(allowed[field]).toBeTruthy();
      // The admin's run changed the registry: so the unchanged snapshot above meant something.
      expect(await registrySnapshot(hub)).not.toEqual(before);
    });

    it('lets a caller read viewer with its own grants and keys, and nothing of the registry through it', async () => {
      const data = expectData(await hub.gql(`{ viewer { role caller { id name grants { id tenant { id } } apiKeys { prefix } } } }`, {}, { key: callerKey }));
      expect(data.viewer.role).toBe('CALLER');
      expect(data.viewer.caller.id).toBe('mx-caller');
      const asAdmin = await hub.admin(`{ caller(id: "mx-caller") { grants { id } apiKeys { prefix } } }`);
      expect(data.viewer.caller.grants.map((g: { id: string }) => g.id).sort()).toEqual(asAdmin.caller.grants.map((g: { id: string }) => g.id).sort());
      expect(data.viewer.caller.grants.length).toBeGreaterThan(0);
      expect(data.viewer.caller.apiKeys).toEqual(asAdmin.caller.apiKeys);
      expect(data.viewer.caller.apiKeys.some((k: { prefix: string }) => callerKey.startsWith(k.prefix))).toBe(true);

      // The tenant's bindings (base URLs, credentials) are registry data.
      const nested = await hub.gql(`{ viewer { caller { grants { tenant { id bindings { baseUrl credential { kind } } } } } } }`, {}, { key: callerKey });
      expectError(nested, 'FORBIDDEN');
      expect(JSON.stringify(nested.body)).not.toContain('/acme-crm');
    });

    it('refuses registry operations to a disabled ADMIN caller', async () => {
      const created = await hub.admin(`mutation { createCaller(input: { id: "mx-admin-2", name: "Second admin", role: ADMIN }) { apiKey caller { role } } }`);
      expect(created.createCaller.caller.role).toBe('ADMIN');
      const key = created.createCaller.apiKey as string;
      // control: an enabled second admin may use the registry
      expect(expectData(await hub.gql(`{ tenant(id: "acme") { id } }`, {}, { key })).tenant.id).toBe('acme');
      await hub.admin(`mutation { updateCaller(id: "mx-admin-2", input: { disabled: true }) { disabled } }`);
      const before = await rowCounts(hub);
      expectError(await hub.gql(`mutation { createTenant(input: { id: "by-disabled-admin", name: "x" }) { id } }`, {}, { key }), 'FORBIDDEN');
      expectError(await hub.gql(`{ tenant(id: "acme") { id name } }`, {}, { key }), 'FORBIDDEN');
      expect(await rowCounts(hub)).toEqual(before);
    });

    it("does not show a caller the SHARED deployment's address through its grant (Binding.baseUrl is admin-only)", async () => {
      await hub.admin(`mutation($u: String) { createSystem(input: { id: "saas", name: "SaaS", mode: SHARED, sharedBaseUrl: $u }) { id } }`, { u: `${up.url}/saas-deployment` });
      await hub.admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "saas" }) { baseUrl } }`);
      const key = await createCallerWithGrant(hub, { id: 'mx-saas', grants: [{ tenantId: 'acme', systemId: 'saas' }] });
      // control: the caller may use the system, and the binding itself is hidden from it
      expect(expectData(await invokeQ(key, 'acme', 'saas', '/ping')).invoke.status).toBe(200);
      const viaBinding = await hub.gql(`{ viewer { caller { grants { system { id bindings { baseUrl } } } } } }`, {}, { key });
      expectError(viaBinding, 'FORBIDDEN');
      expect(JSON.stringify(viaBinding.body)).not.toContain('/saas-deployment');
      // the same address, read as the system's sharedBaseUrl
      const viaSystem = await hub.gql(`{ viewer { caller { grants { system { id sharedBaseUrl } } } } }`, {}, { key });
      expect(JSON.stringify(viaSystem.body)).not.toContain('/saas-deployment');
    });

    it('tells the admin key apart from a caller key in viewer', async () => {
      const data = expectData(await hub.gql(VIEWER));
      expect(data.viewer.role).toBe('ADMIN');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('invocations: callers see only their own', () => {
    let keyA: string;
    let keyB: string;

    beforeAll(async () => {
      keyA = await createCallerWithGrant(hub, { id: 'inv-a', grants: [{ tenantId: 'acme' }] });
      keyB = await createCallerWithGrant(hub, { id: 'inv-b', grants: [{ tenantId: 'acme' }] });
      expectData(await invokeQ(keyA, 'acme', 'crm', '/a1'));
      expectData(await invokeQ(keyA, 'acme', 'erp', '/a2'));
      expectError(await invokeQ(keyA, 'globex', 'crm', '/a3'), 'FORBIDDEN');
      expectData(await invokeQ(keyB, 'acme', 'crm', '/b1'));
      expectData(await invokeQ(keyB, 'acme', 'crm', '/b2'));
    });

    const LIST = `query($c: ID, $t: ID, $s: ID) { invocations(first: 500, callerId: $c, tenantId: $t, systemId: $s) { totalCount edges { node { callerId tenantId systemId path code } } } }`;

    it('lists a caller its own records, refused ones included', async () => {
      const data = expectData(await hub.gql(LIST, {}, { key: keyA }));
      const nodes = data.invocations.edges.map((e: { node: any }) => e.node);
      expect(nodes.map((n: any) => n.path).sort()).toEqual(['/a1', '/a2', '/a3']);
      expect(nodes.every((n: any) => n.callerId === 'inv-a')).toBe(true);
      expect(data.invocations.totalCount).toBe(3);
      expect(nodes.find((n: any) => n.path === '/a3').code).toBe('FORBIDDEN');
    });

    it("never shows a caller another caller's records, even when it asks for that callerId", async () => {
      const other = expectData(await hub.gql(LIST, { c: 'inv-b' }, { key: keyA }));
      expect(other.invocations.edges).toEqual([]);
      expect(other.invocations.totalCount).toBe(0);
      const byTenant = expectData(await hub.gql(LIST, { t: 'acme', s: 'crm' }, { key: keyA }));
      expect(byTenant.invocations.edges.map((e: any) => `${e.node.callerId} ${e.node.path}`)).toEqual(['inv-a /a1']);
      expect(byTenant.invocations.totalCount).toBe(1);
      const mine = expectData(await hub.gql(LIST, { c: 'inv-a' }, { key: keyA }));
      expect(mine.invocations.totalCount).toBe(3);
      // The other caller's records do exist: the admin sees them.
      const admin = expectData(await hub.gql(LIST, { c: 'inv-b' }));
      expect(admin.invocations.edges.map((e: any) => e.node.path).sort()).toEqual(['/b1', '/b2']);
      expect(JSON.stringify(other)).not.toContain('/b1');
    });

    it('lets the admin see every caller', async () => {
      const data = expectData(await hub.gql(LIST, { t: 'acme', s: 'crm' }));
      const callers = new Set(data.invocations.edges.map((e: any) => e.node.callerId));
      expect(callers.has('inv-a')).toBe(true);
      expect(callers.has('inv-b')).toBe(true);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('grants', () => {
    it('refuses an existing-but-ungranted tenant exactly like a non-existent one, sending nothing', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-acme-only', grants: [{ tenantId: 'acme' }] });
      const before = up.requests.length;
      const ungranted = expectError(await invokeQ(key, 'globex', 'crm', '/patients/1'), 'FORBIDDEN');
      const missing = expectError(await invokeQ(key, 'no-such-tenant', 'crm', '/patients/1'), 'FORBIDDEN');
      const unbound = expectError(await invokeQ(key, 'initech', 'crm', '/patients/1'), 'FORBIDDEN'); // exists, no binding
      const shape = (e: { message: string }, id: string) => e.message.split(id).join('<T>');
      expect(shape(ungranted, 'globex')).toBe(shape(missing, 'no-such-tenant'));
      expect(shape(unbound, 'initech')).toBe(shape(missing, 'no-such-tenant'));
      expect(Object.keys(ungranted.extensions!).sort()).toEqual(Object.keys(missing.extensions!).sort());
      expect(ungranted.message).not.toMatch(/exist|disabled|bound/i);
      // Mutation.invoke alike
      const m1 = expectError(await invokeM(key, 'globex', 'crm', '/x'), 'FORBIDDEN');
      const m2 = expectError(await invokeM(key, 'nobody', 'crm', '/x'), 'FORBIDDEN');
      expect(shape(m1, 'globex')).toBe(shape(m2, 'nobody'));
      expect(up.requests.length).toBe(before);
      // control: the granted tenant is reached
      expectData(await invokeQ(key, 'acme', 'crm', '/patients/1'));
      expect(up.requests.length).toBe(before + 1);
    });

    it('refuses an ungranted system the same whether or not it exists', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-sys-shape', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
      const before = up.requests.length;
      const existing = expectError(await invokeQ(key, 'acme', 'erp', '/x'), 'FORBIDDEN');
      const missing = expectError(await invokeQ(key, 'acme', 'no-such-system', '/x'), 'FORBIDDEN');
      expect(existing.message.split('erp').join('<S>')).toBe(missing.message.split('no-such-system').join('<S>'));
      expect(up.requests.length).toBe(before);
    });

    it('limits a grant with systemId to that system', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-crm-only', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
      const erpBefore = sentTo('/acme-erp').length;
      const ok = expectData(await invokeQ(key, 'acme', 'crm', '/c/1'));
      expect(ok.invoke.status).toBe(200);
      expect(sentTo('/acme-crm/c/1').length).toBeGreaterThan(0);
      expectError(await invokeQ(key, 'acme', 'erp', '/c/1'), 'FORBIDDEN');
      expectError(await invokeM(key, 'acme', 'erp', '/c/1', 'PUT'), 'FORBIDDEN');
      expect(sentTo('/acme-erp').length).toBe(erpBefore);
    });

    it('enforces the methods list: GET granted, POST refused through Mutation.invoke', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-get-only', grants: [{ tenantId: 'acme', systemId: 'crm', methods: ['GET'] }] });
      expect(expectData(await invokeQ(key, 'acme', 'crm', '/m/get')).invoke.status).toBe(200);
      expect(expectData(await invokeM(key, 'acme', 'crm', '/m/mget', 'GET')).invoke.status).toBe(200);
      const before = up.requests.length;
      expectError(await invokeM(key, 'acme', 'crm', '/m/post', 'POST'), 'FORBIDDEN');
      expectError(await invokeM(key, 'acme', 'crm', '/m/delete', 'DELETE'), 'FORBIDDEN');
      expectError(await invokeQ(key, 'acme', 'crm', '/m/head', 'HEAD'), 'FORBIDDEN');
      expect(up.requests.length).toBe(before);
      expect(sentTo('/acme-crm/m/')).toEqual(['GET /acme-crm/m/get', 'GET /acme-crm/m/mget']);
    });

    it('matches pathPrefix by whole segments', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-patients', grants: [{ tenantId: 'acme', systemId: 'crm', pathPrefix: '/patients' }] });
      const before = up.requests.length;
      expect(expectData(await invokeQ(key, 'acme', 'crm', '/patients')).invoke.status).toBe(200);
      expect(expectData(await invokeQ(key, 'acme', 'crm', '/patients/7')).invoke.status).toBe(200);
      expect(expectData(await invokeM(key, 'acme', 'crm', '/patients/7/notes', 'POST')).invoke.status).toBe(200);
      for (const path of ['/patients-admin', '/patient', '/patientsX/1', '/', '/admin/patients', '/Patients/7']) {
        expectError(await invokeQ(key, 'acme', 'crm', path), 'FORBIDDEN');
      }
      expectError(await invokeM(key, 'acme', 'crm', '/patients-admin/1', 'POST'), 'FORBIDDEN');
      // Escapes out of the prefix are refused before the grant is even looked at.
      expectError(await invokeQ(key, 'acme', 'crm', '/patients/../admin'), 'BAD_USER_INPUT');
      expectError(await invokeQ(key, 'acme', 'crm', '/patients/%2e%2e/admin'), 'BAD_USER_INPUT');
      expect(up.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /acme-crm/patients', 'GET /acme-crm/patients/7', 'POST /acme-crm/patients/7/notes']);
    });

    it('refuses an expired grant', async () => {
      await createCallerWithGrant(hub, { id: 'g-expiring', grants: [] });
      const key = (await hub.admin(`mutation { issueApiKey(callerId: "g-expiring") { apiKey } }`)).issueApiKey.apiKey as string;
      const expiresAt = new Date(Date.now() + 2000).toISOString();
      const g = await hub.admin(`mutation($i: GrantInput!) { grant(input: $i) { id expiresAt } }`, { i: { callerId: 'g-expiring', tenantId: 'acme', expiresAt } });
      expect(new Date(g.grant.expiresAt).getTime()).toBe(new Date(expiresAt).getTime());
      expect(expectData(await invokeQ(key, 'acme', 'crm', '/exp/1')).invoke.status).toBe(200);
      await waitUntilPast(expiresAt);
      const before = up.requests.length;
      expectError(await invokeQ(key, 'acme', 'crm', '/exp/2'), 'FORBIDDEN');
      expect(up.requests.length).toBe(before);
    });

    it('takes a revoked grant away on the next request, leaving other grants', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-revoked', grants: [{ tenantId: 'acme', systemId: 'crm' }, { tenantId: 'acme', systemId: 'erp' }] });
      expectData(await invokeQ(key, 'acme', 'crm', '/rv/1'));
      const grants = (await hub.admin(`{ caller(id: "g-revoked") { grants { id system { id } } } }`)).caller.grants as { id: string; system: { id: string } }[];
      const crmGrant = grants.find((g) => g.system.id === 'crm')!;
      expect((await hub.admin(`mutation($id: ID!) { revokeGrant(id: $id) }`, { id: crmGrant.id })).revokeGrant).toBe(true);
      const before = up.requests.length;
      expectError(await invokeQ(key, 'acme', 'crm', '/rv/2'), 'FORBIDDEN');
      expect(up.requests.length).toBe(before);
      expectData(await invokeQ(key, 'acme', 'erp', '/rv/3'));
    });

    it('refuses a disabled caller, and serves it again once re-enabled', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-disabled', grants: [{ tenantId: 'acme' }] });
      expectData(await invokeQ(key, 'acme', 'crm', '/dc/1'));
      await hub.admin(`mutation { updateCaller(id: "g-disabled", input: { disabled: true }) { disabled } }`);
      const before = up.requests.length;
      expectError(await invokeQ(key, 'acme', 'crm', '/dc/2'), 'FORBIDDEN');
      expectError(await invokeM(key, 'acme', 'crm', '/dc/3'), 'FORBIDDEN');
      expect(up.requests.length).toBe(before);
      await hub.admin(`mutation { updateCaller(id: "g-disabled", input: { disabled: false }) { disabled } }`);
      expectData(await invokeQ(key, 'acme', 'crm', '/dc/4'));
    });

    it('refuses a disabled caller everything, viewer and invocations included (schema: "refused everything with FORBIDDEN")', async () => {
      const key = await createCallerWithGrant(hub, { id: 'g-disabled-all', grants: [{ tenantId: 'acme' }] });
      expectData(await hub.gql(VIEWER, {}, { key }));
      await hub.admin(`mutation { updateCaller(id: "g-disabled-all", input: { disabled: true }) { disabled } }`);
      expectError(await hub.gql(VIEWER, {}, { key }), 'FORBIDDEN');
      expectError(await hub.gql(`{ invocations { totalCount } }`, {}, { key }), 'FORBIDDEN');
    });

    it("refuses a caller whose own tenant is disabled", async () => {
      await hub.admin(`mutation { createTenant(input: { id: "home-t", name: "Home" }) { id } }`);
      const key = await createCallerWithGrant(hub, { id: 'g-homeless', tenantId: 'home-t', grants: [{ tenantId: 'acme' }] });
      expectData(await invokeQ(key, 'acme', 'crm', '/home/1'));
      await hub.admin(`mutation { updateTenant(id: "home-t", input: { disabled: true }) { disabled } }`);
      const before = up.requests.length;
      expectError(await invokeQ(key, 'acme', 'crm', '/home/2'), 'FORBIDDEN');
      expect(up.requests.length).toBe(before);
      await hub.admin(`mutation { updateTenant(id: "home-t", input: { disabled: false }) { disabled } }`);
      expectData(await invokeQ(key, 'acme', 'crm', '/home/3'));
    });

    it('refuses calls to a disabled tenant, for callers and admins', async () => {
      await seedExclusive(hub, { tenantId: 'sleepy', systemId: 'crm', baseUrl: `${up.url}/sleepy` });
      const key = await createCallerWithGrant(hub, { id: 'g-to-sleepy', grants: [{ tenantId: 'sleepy' }] });
      expectData(await invokeQ(key, 'sleepy', 'crm', '/1'));
      const t = await hub.admin(`mutation { updateTenant(id: "sleepy", input: { disabled: true }) { disabled } }`);
      expect(t.updateTenant.disabled).toBe(true);
      const before = sentTo('/sleepy').length;
      expectError(await invokeQ(key, 'sleepy', 'crm', '/2'), 'FORBIDDEN');
      expectError(await invokeM(key, 'sleepy', 'crm', '/3'), 'FORBIDDEN');
      expectError(await invokeQ(hub.adminKey, 'sleepy', 'crm', '/4'), 'FORBIDDEN');
      expect(sentTo('/sleepy').length).toBe(before);
      await hub.admin(`mutation { updateTenant(id: "sleepy", input: { disabled: false }) { disabled } }`);
      expectData(await invokeQ(key, 'sleepy', 'crm', '/5'));
    });

    it('refuses calls through a disabled binding', async () => {
      await hub.admin(`mutation { createTenant(input: { id: "dormant", name: "Dormant" }) { id } }`);
      const b = await hub.admin(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { disabled } }`, { i: { tenantId: 'dormant', systemId: 'crm', baseUrl: `${up.url}/dormant`, disabled: true } });
      expect(b.bindSystem.disabled).toBe(true);
      const key = await createCallerWithGrant(hub, { id: 'g-to-dormant', grants: [{ tenantId: 'dormant' }] });
      expectError(await invokeQ(key, 'dormant', 'crm', '/1'), 'FORBIDDEN');
      expectError(await invokeM(key, 'dormant', 'crm', '/2'), 'FORBIDDEN');
      expectError(await invokeQ(hub.adminKey, 'dormant', 'crm', '/3'), 'FORBIDDEN');
      expect(sentTo('/dormant')).toEqual([]);
      await hub.admin(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { disabled } }`, { i: { tenantId: 'dormant', systemId: 'crm', baseUrl: `${up.url}/dormant` } });
      expectData(await invokeQ(key, 'dormant', 'crm', '/4'));
      expect(sentTo('/dormant')).toEqual(['GET /dormant/4']);
    });

    it('gives an admin NOT_FOUND for an unknown tenant, system or binding', async () => {
      const before = up.requests.length;
      expectError(await invokeQ(hub.adminKey, 'no-such-tenant', 'crm', '/x'), 'NOT_FOUND');
      expectError(await invokeQ(hub.adminKey, 'acme', 'no-such-system', '/x'), 'NOT_FOUND');
      expectError(await invokeQ(hub.adminKey, 'globex', 'erp', '/x'), 'NOT_FOUND'); // both exist, not bound
      expectError(await invokeM(hub.adminKey, 'initech', 'crm', '/x'), 'NOT_FOUND');
      expect(up.requests.length).toBe(before);
      expect(expectData(await invokeQ(hub.adminKey, 'acme', 'erp', '/x')).invoke.status).toBe(200);
    });

    it('rotates keys: a second key works beside the first; revoking the first leaves only the second', async () => {
      const key1 = await createCallerWithGrant(hub, { id: 'g-rotating', grants: [{ tenantId: 'acme', systemId: 'crm' }] });
      const issued = await hub.admin(`mutation { issueApiKey(callerId: "g-rotating") { apiKey key { id prefix revokedAt } } }`);
      const key2 = issued.issueApiKey.apiKey as string;
      expect(key2).not.toBe(key1);
      expect(key2.startsWith(issued.issueApiKey.key.prefix)).toBe(true);
      for (const key of [key1, key2]) {
        expect(expectData(await hub.gql(VIEWER, {}, { key })).viewer.caller.id).toBe('g-rotating');
        expectData(await invokeQ(key, 'acme', 'crm', '/rot'));
      }
      const id1 = await apiKeyIdOf('g-rotating', key1);
      expect(id1).not.toBe(issued.issueApiKey.key.id);
      await hub.admin(`mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: id1 });
      expectError(await hub.gql(VIEWER, {}, { key: key1 }), 'UNAUTHENTICATED', { status: 401 });
      expectError(await invokeQ(key1, 'acme', 'crm', '/rot'), 'UNAUTHENTICATED', { status: 401 });
      expect(expectData(await hub.gql(VIEWER, {}, { key: key2 })).viewer.caller.id).toBe('g-rotating');
      expectData(await invokeQ(key2, 'acme', 'crm', '/rot'));
    });
  });
});

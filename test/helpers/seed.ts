// Registry set-ups used across suites, made through the public GraphQL API.
import type { TestHub } from './test-hub.js';

export async function createCallerWithGrant(
  hub: TestHub,
  opts: { id: string; tenantId?: string; grants: { tenantId: string; systemId?: string; methods?: string[]; pathPrefix?: string; expiresAt?: string }[] },
): Promise<string> {
  const created = await hub.admin(
    `mutation($input: CreateCallerInput!) { createCaller(input: $input) { apiKey caller { id } } }`,
    { input: { id: opts.id, name: opts.id, tenantId: opts.tenantId } },
  );
  for (const g of opts.grants) {
    await hub.admin(`mutation($input: GrantInput!) { grant(input: $input) { id } }`, { input: { callerId: opts.id, ...g } });
  }
  return created.createCaller.apiKey as string;
}

/** Tenant + EXCLUSIVE system + binding with a bearer token. */
export async function seedExclusive(hub: TestHub, o: { tenantId: string; systemId: string; baseUrl: string; token?: string; batchPath?: string }) {
  await hub.admin(`mutation($i: CreateTenantInput!) { createTenant(input: $i) { id } }`, { i: { id: o.tenantId, name: `Tenant ${o.tenantId}` } }).catch(() => {});
  await hub
    .admin(`mutation($i: CreateSystemInput!) { createSystem(input: $i) { id } }`, { i: { id: o.systemId, name: o.systemId, mode: 'EXCLUSIVE', batchPath: o.batchPath } })
    .catch(() => {});
  await hub.admin(`mutation($i: BindSystemInput!) { bindSystem(input: $i) { baseUrl } }`, {
    i: { tenantId: o.tenantId, systemId: o.systemId, baseUrl: o.baseUrl, credential: o.token ? { kind: 'BEARER', token: o.token } : undefined },
  });
}

export const INVOKE_QUERY = `query($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) { status ok headers data durationMs requestId } }`;
export const INVOKE_MUTATION = `mutation($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) { status ok headers data durationMs requestId } }`;

import type { Grant } from '../generated/prisma/client.js';
import { grant, revokeGrant } from '../registry/callers.js';
import { loadExisting } from '../registry/loaders.js';
import { builder } from './builder.js';
import { CallerRef } from './caller.js';
import { HttpMethodEnum } from './enums.js';
import { SystemRef } from './system.js';
import { TenantRef } from './tenant.js';

export const GrantRef = builder.objectRef<Grant>('Grant');
GrantRef.implement({
  description: 'Permission for a caller to invoke systems of one tenant.',
  fields: (t) => ({
    id: t.exposeID('id'),
    caller: t.field({ type: CallerRef, resolve: (g, _, ctx) => loadExisting(ctx.loaders.caller, g.callerId, 'Caller') }),
    tenant: t.field({ type: TenantRef, resolve: (g, _, ctx) => loadExisting(ctx.loaders.tenant, g.tenantId, 'Tenant') }),
    system: t.field({ type: SystemRef, nullable: true, description: 'null: every system of the tenant.', resolve: (g, _, ctx) => (g.systemId ? loadExisting(ctx.loaders.system, g.systemId, 'System') : null) }),
    methods: t.field({ type: [HttpMethodEnum], nullable: true, description: 'null: every method.', resolve: (g) => (g.methods.length ? g.methods : null) }),
    pathPrefix: t.exposeString('pathPrefix', { nullable: true, description: 'Matched by whole path segments: /patients covers /patients/7, not /patients-admin.' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const GrantInput = builder.inputType('GrantInput', {
  fields: (t) => ({
    callerId: t.id({ required: true }),
    tenantId: t.id({ required: true }),
    systemId: t.id({ description: 'Default: every system of the tenant.' }),
    methods: t.field({ type: [HttpMethodEnum], description: 'Default: every method.' }),
    pathPrefix: t.string(),
    expiresAt: t.field({ type: 'DateTime' }),
  }),
});

builder.mutationFields((t) => ({
  grant: t.field({
    type: GrantRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: GrantInput, required: true }) },
    resolve: (_, { input }, ctx) =>
      grant(ctx.services.prisma, {
        ...input,
        callerId: String(input.callerId),
        tenantId: String(input.tenantId),
        systemId: input.systemId == null ? null : String(input.systemId),
      }),
  }),
  revokeGrant: t.boolean({
    authScopes: { admin: true },
    description: 'Takes effect on the next request.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => revokeGrant(ctx.services.prisma, String(id)),
  }),
}));

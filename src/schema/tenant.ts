import type { Tenant } from '../generated/prisma/client.js';
import { createTenant, deleteTenant, updateTenant } from '../registry/tenants.js';
import { builder } from './builder.js';
import { BindingRef } from './binding.js';
import { connectionType, pageById } from './pagination.js';

export const TenantRef = builder.objectRef<Tenant>('Tenant');
TenantRef.implement({
  description: 'A customer of the SaaS platform. Its ID is what callers pass to invoke.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    disabled: t.exposeBoolean('disabled'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    bindings: t.field({
      type: [BindingRef],
      authScopes: { admin: true },
      resolve: (tenant, _, ctx) => ctx.loaders.bindingsOfTenant.load(tenant.id),
    }),
  }),
});

const TenantConnection = connectionType('Tenant', TenantRef);

const CreateTenantInput = builder.inputType('CreateTenantInput', {
  fields: (t) => ({
    id: t.id({ required: true, description: '1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit' }),
    name: t.string({ required: true }),
  }),
});

const UpdateTenantInput = builder.inputType('UpdateTenantInput', {
  fields: (t) => ({
    name: t.string(),
    disabled: t.boolean({ description: 'A disabled tenant cannot be invoked or invoke.' }),
  }),
});

builder.queryFields((t) => ({
  tenant: t.field({
    type: TenantRef,
    nullable: true,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.loaders.tenant.load(String(id)),
  }),
  tenants: t.field({
    type: TenantConnection,
    authScopes: { admin: true },
    description: 'Tenants in id order.',
    args: { first: t.arg.int({ description: 'At most 500; default 50.' }), after: t.arg.string() },
    resolve: (_, { first, after }, ctx) => pageById(ctx.services.prisma.tenant, first, after),
  }),
}));

builder.mutationFields((t) => ({
  createTenant: t.field({
    type: TenantRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateTenantInput, required: true }) },
    resolve: (_, { input }, ctx) => createTenant(ctx.services.prisma, { id: String(input.id), name: input.name }),
  }),
  updateTenant: t.field({
    type: TenantRef,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateTenantInput, required: true }) },
    resolve: (_, { id, input }, ctx) => updateTenant(ctx.services.prisma, String(id), input),
  }),
  deleteTenant: t.boolean({
    authScopes: { admin: true },
    description: "Deletes the tenant, its bindings and the grants on it. Refused while callers belong to it.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => deleteTenant(ctx.services.prisma, String(id)),
  }),
}));

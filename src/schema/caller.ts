import type { Caller } from '../generated/prisma/client.js';
import { createCaller, deleteCaller, updateCaller } from '../registry/callers.js';
import { ApiKeyRef } from './api-key.js';
import { builder } from './builder.js';
import { RoleEnum } from './enums.js';
import { GrantRef } from './grant.js';
import { connectionType, pageById } from './pagination.js';
import { TenantRef } from './tenant.js';

export const CallerRef = builder.objectRef<Caller>('Caller');
CallerRef.implement({
  description: 'A calling system (or an administrator): the owner of API keys and grants.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    role: t.expose('role', { type: RoleEnum }),
    tenant: t.field({ type: TenantRef, nullable: true, resolve: (c, _, ctx) => (c.tenantId ? ctx.loaders.tenant.load(c.tenantId) : null) }),
    disabled: t.exposeBoolean('disabled'),
    quotaPerMinute: t.exposeInt('quotaPerMinute', { nullable: true, description: "Invokes per minute; null: the hub's default." }),
    grants: t.field({ type: [GrantRef], resolve: (c, _, ctx) => ctx.loaders.grantsOfCaller.load(c.id) }),
    apiKeys: t.field({ type: [ApiKeyRef], resolve: (c, _, ctx) => ctx.loaders.apiKeysOfCaller.load(c.id) }),
  }),
});

const CallerConnection = connectionType('Caller', CallerRef);

const CreatedCallerRef = builder.objectRef<{ caller: Caller; apiKey: string }>('CreatedCaller');
CreatedCallerRef.implement({
  fields: (t) => ({
    caller: t.field({ type: CallerRef, resolve: (c) => c.caller }),
    apiKey: t.exposeString('apiKey', { description: 'The API key. Shown this once; only its hash is stored.' }),
  }),
});

const CreateCallerInput = builder.inputType('CreateCallerInput', {
  fields: (t) => ({
    id: t.id({ description: 'Default: a generated id.' }),
    name: t.string({ required: true }),
    tenantId: t.id({ description: 'The tenant the calling system belongs to, if any.' }),
    role: t.field({ type: RoleEnum, defaultValue: 'CALLER' }),
    quotaPerMinute: t.int({ description: "Invokes per minute; default: the hub's HUB_QUOTA_PER_MINUTE." }),
  }),
});

const UpdateCallerInput = builder.inputType('UpdateCallerInput', {
  fields: (t) => ({
    name: t.string(),
    disabled: t.boolean({ description: 'A disabled caller is refused everything with FORBIDDEN.' }),
    quotaPerMinute: t.int({ description: "Invokes per minute; null: back to the hub's default." }),
  }),
});

builder.queryFields((t) => ({
  caller: t.field({
    type: CallerRef,
    nullable: true,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.loaders.caller.load(String(id)),
  }),
  callers: t.field({
    type: CallerConnection,
    authScopes: { admin: true },
    description: 'Callers in id order.',
    args: { first: t.arg.int({ description: 'At most 500; default 50.' }), after: t.arg.string() },
    resolve: (_, { first, after }, ctx) => pageById(ctx.services.prisma.caller, first, after),
  }),
}));

builder.mutationFields((t) => ({
  createCaller: t.field({
    type: CreatedCallerRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateCallerInput, required: true }) },
    resolve: (_, { input }, ctx) =>
      createCaller(ctx.services.prisma, { ...input, id: input.id == null ? null : String(input.id), tenantId: input.tenantId == null ? null : String(input.tenantId) }),
  }),
  updateCaller: t.field({
    type: CallerRef,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateCallerInput, required: true }) },
    resolve: (_, { id, input }, ctx) => updateCaller(ctx.services.prisma, String(id), input),
  }),
  deleteCaller: t.boolean({
    authScopes: { admin: true },
    description: 'Deletes the caller with its API keys and grants. Its invocation records stay.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => deleteCaller(ctx.services.prisma, String(id)),
  }),
}));

import type { System } from '../generated/prisma/client.js';
import { createSystem, deleteSystem, updateSystem } from '../registry/systems.js';
import { BindingRef } from './binding.js';
import { builder } from './builder.js';
import { SystemModeEnum } from './enums.js';
import { connectionType, pageById } from './pagination.js';

export const SystemRef = builder.objectRef<System>('System');
SystemRef.implement({
  description: 'A business system that callers reach through the hub.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    mode: t.expose('mode', { type: SystemModeEnum }),
    sharedBaseUrl: t.exposeString('sharedBaseUrl', { nullable: true, authScopes: { admin: true }, description: 'SHARED: the one deployment all tenants use.' }),
    tenantHeader: t.exposeString('tenantHeader', { description: 'SHARED: the header that names the tenant (value: the tenant ID).' }),
    timeoutMs: t.exposeInt('timeoutMs', { description: 'Deadline of one call, in milliseconds.' }),
    batchPath: t.exposeString('batchPath', { nullable: true, description: 'Path of the JSON batch endpoint, if the system has one.' }),
    batchMaxSize: t.exposeInt('batchMaxSize'),
    bindings: t.field({
      type: [BindingRef],
      authScopes: { admin: true },
      resolve: (system, _, ctx) => ctx.loaders.bindingsOfSystem.load(system.id),
    }),
  }),
});

const SystemConnection = connectionType('System', SystemRef);

const CreateSystemInput = builder.inputType('CreateSystemInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string({ required: true }),
    mode: t.field({ type: SystemModeEnum, required: true }),
    sharedBaseUrl: t.string({ description: 'Required for SHARED systems.' }),
    tenantHeader: t.string({ description: 'Default X-Tenant-Id.' }),
    timeoutMs: t.int({ description: '1 to 300000; default 10000.' }),
    batchPath: t.string(),
    batchMaxSize: t.int({ description: '1 to 100; default 20.' }),
  }),
});

const UpdateSystemInput = builder.inputType('UpdateSystemInput', {
  description: 'Fields left out stay as they are; null clears sharedBaseUrl or batchPath.',
  fields: (t) => ({
    name: t.string(),
    mode: t.field({ type: SystemModeEnum }),
    sharedBaseUrl: t.string(),
    tenantHeader: t.string(),
    timeoutMs: t.int(),
    batchPath: t.string(),
    batchMaxSize: t.int(),
  }),
});

builder.queryFields((t) => ({
  system: t.field({
    type: SystemRef,
    nullable: true,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.loaders.system.load(String(id)),
  }),
  systems: t.field({
    type: SystemConnection,
    authScopes: { admin: true },
    description: 'Systems in id order.',
    args: { first: t.arg.int({ description: 'At most 500; default 50.' }), after: t.arg.string() },
    resolve: (_, { first, after }, ctx) => pageById(ctx.services.prisma.system, first, after),
  }),
}));

builder.mutationFields((t) => ({
  createSystem: t.field({
    type: SystemRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateSystemInput, required: true }) },
    resolve: (_, { input }, ctx) => createSystem(ctx.services.prisma, { ...input, id: String(input.id) }),
  }),
  updateSystem: t.field({
    type: SystemRef,
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateSystemInput, required: true }) },
    resolve: (_, { id, input }, ctx) => updateSystem(ctx.services.prisma, String(id), input),
  }),
  deleteSystem: t.boolean({
    authScopes: { admin: true },
    description: 'Deletes the system, its bindings and the grants that name it.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => deleteSystem(ctx.services.prisma, String(id)),
  }),
}));

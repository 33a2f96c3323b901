import type { Binding } from '../generated/prisma/client.js';
import { bindSystem, effectiveBaseUrl, setCredential, unbindSystem } from '../registry/bindings.js';
import { bindingKey, loadExisting } from '../registry/loaders.js';
import { rotateCredentials, type Rotation } from '../secrets/rotate.js';
import { builder } from './builder.js';
import { CredentialKindEnum } from './enums.js';
import { SystemRef } from './system.js';
import { TenantRef } from './tenant.js';

/** What may be known about a credential: never the secret itself. */
const CredentialInfoRef = builder.objectRef<Binding>('CredentialInfo');
CredentialInfoRef.implement({
  fields: (t) => ({
    kind: t.field({ type: CredentialKindEnum, resolve: (b) => b.credentialKind }),
    headerName: t.string({ nullable: true, resolve: (b) => b.credentialHeaderName }),
    updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (b) => b.credentialUpdatedAt }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (b) => b.credentialExpiresAt }),
  }),
});

export const BindingRef = builder.objectRef<Binding>('Binding');
BindingRef.implement({
  description: "A tenant's deployment of a system: where calls go and how the hub authenticates there.",
  fields: (t) => ({
    tenant: t.field({ type: TenantRef, resolve: (b, _, ctx) => loadExisting(ctx.loaders.tenant, b.tenantId, 'Tenant') }),
    system: t.field({ type: SystemRef, resolve: (b, _, ctx) => loadExisting(ctx.loaders.system, b.systemId, 'System') }),
    baseUrl: t.string({
      description: "The effective base URL: the binding's own, else the SHARED system's sharedBaseUrl.",
      resolve: async (b, _, ctx) => effectiveBaseUrl(b, await loadExisting(ctx.loaders.system, b.systemId, 'System')),
    }),
    credential: t.field({ type: CredentialInfoRef, resolve: (b) => b }),
    disabled: t.exposeBoolean('disabled'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const CredentialInput = builder.inputType('CredentialInput', {
  fields: (t) => ({
    kind: t.field({ type: CredentialKindEnum, required: true }),
    token: t.string({ description: 'BEARER: sent as "Authorization: Bearer <token>". HEADER: the header value.' }),
    headerName: t.string({ description: 'HEADER only.' }),
    tokenUrl: t.string({ description: 'OAUTH2_CLIENT_CREDENTIALS (not supported yet).' }),
    clientId: t.string(),
    clientSecret: t.string(),
    scope: t.string(),
  }),
});

const BindSystemInput = builder.inputType('BindSystemInput', {
  fields: (t) => ({
    tenantId: t.id({ required: true }),
    systemId: t.id({ required: true }),
    baseUrl: t.string({ description: "Required for EXCLUSIVE systems; for SHARED ones it overrides sharedBaseUrl." }),
    credential: t.field({ type: CredentialInput, description: 'Default: kind NONE.' }),
    disabled: t.boolean({ description: 'Default false. A disabled binding refuses calls with FORBIDDEN.' }),
  }),
});

builder.queryFields((t) => ({
  binding: t.field({
    type: BindingRef,
    nullable: true,
    authScopes: { admin: true },
    args: { tenantId: t.arg.id({ required: true }), systemId: t.arg.id({ required: true }) },
    resolve: (_, { tenantId, systemId }, ctx) => ctx.loaders.binding.load(bindingKey(String(tenantId), String(systemId))),
  }),
}));

builder.mutationFields((t) => ({
  bindSystem: t.field({
    type: BindingRef,
    authScopes: { admin: true },
    description: 'Creates or replaces the (tenant, system) binding.',
    args: { input: t.arg({ type: BindSystemInput, required: true }) },
    resolve: (_, { input }, ctx) =>
      bindSystem(ctx.services.prisma, ctx.services.box, { ...input, tenantId: String(input.tenantId), systemId: String(input.systemId) }),
  }),
  setCredential: t.field({
    type: BindingRef,
    authScopes: { admin: true },
    args: { tenantId: t.arg.id({ required: true }), systemId: t.arg.id({ required: true }), credential: t.arg({ type: CredentialInput, required: true }) },
    resolve: (_, { tenantId, systemId, credential }, ctx) =>
      setCredential(ctx.services.prisma, ctx.services.box, String(tenantId), String(systemId), credential),
  }),
  unbindSystem: t.boolean({
    authScopes: { admin: true },
    args: { tenantId: t.arg.id({ required: true }), systemId: t.arg.id({ required: true }) },
    resolve: (_, { tenantId, systemId }, ctx) => unbindSystem(ctx.services.prisma, String(tenantId), String(systemId)),
  }),
}));

const KeyRotationRef = builder.objectRef<Rotation>('KeyRotation');
KeyRotationRef.implement({
  fields: (t) => ({
    rotated: t.exposeInt('rotated', { description: 'Credentials re-encrypted by this call.' }),
    keyId: t.exposeString('keyId', { description: 'Id of the key that now seals every credential.' }),
  }),
});

builder.mutationFields((t) => ({
  rotateEncryptionKey: t.field({
    type: KeyRotationRef,
    authScopes: { admin: true },
    description: 'Admin: re-encrypts every stored credential with the current HUB_ENCRYPTION_KEY (all or nothing).',
    resolve: (_, __, ctx) => rotateCredentials(ctx.services.prisma, ctx.services.box),
  }),
}));

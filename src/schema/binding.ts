import type { Binding, OAuthToken } from '../generated/prisma/client.js';
import { bindSystem, effectiveBaseUrl, setCredential, unbindSystem } from '../registry/bindings.js';
import { bindingKey, loadExisting, type RegistryLoaders } from '../registry/loaders.js';
import { rotateCredentials, type Rotation } from '../secrets/rotate.js';
import { builder } from './builder.js';
import { CredentialKindEnum } from './enums.js';
import { SystemRef } from './system.js';
import { TenantRef } from './tenant.js';

const OAuthTokenStateEnum = builder.enumType('OAuthTokenState', {
  description: 'Where the access token of an OAUTH2_CLIENT_CREDENTIALS binding stands.',
  values: {
    NOT_OBTAINED: { description: 'No token yet: the first call obtains one.' },
    VALID: { description: 'A token that has not expired; the last token request succeeded.' },
    EXPIRED: { description: 'The token has expired: the next call refreshes it.' },
    FAILING: { description: 'The last token request failed (see lastError); none is made before cooldownUntil.' },
  } as const,
});

type TokenRow = OAuthToken | null;
const isOAuth2 = (b: Binding) => b.credentialKind === 'OAUTH2_CLIENT_CREDENTIALS';
/** The binding's OAuth2 token row; null for other kinds and before the first token request. */
const tokenOf = (b: Binding, ctx: { loaders: RegistryLoaders }): Promise<TokenRow> | null =>
  isOAuth2(b) ? ctx.loaders.oauthToken.load(bindingKey(b.tenantId, b.systemId)) : null;

/** What may be known about a credential: never the secret itself. */
const CredentialInfoRef = builder.objectRef<Binding>('CredentialInfo');
CredentialInfoRef.implement({
  fields: (t) => ({
    kind: t.field({ type: CredentialKindEnum, resolve: (b) => b.credentialKind }),
    headerName: t.string({ nullable: true, resolve: (b) => b.credentialHeaderName }),
    updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (b) => b.credentialUpdatedAt }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: "OAUTH2_CLIENT_CREDENTIALS: the current access token's expiry.",
      resolve: async (b, _, ctx) => (isOAuth2(b) ? ((await tokenOf(b, ctx))?.expiresAt ?? null) : b.credentialExpiresAt),
    }),
    tokenState: t.field({
      type: OAuthTokenStateEnum,
      nullable: true,
      description: 'OAUTH2_CLIENT_CREDENTIALS only (null for other kinds).',
      resolve: async (b, _, ctx) => {
        if (!isOAuth2(b)) return null;
        const row = await tokenOf(b, ctx);
        if (row?.failures) return 'FAILING';
        if (!row?.ciphertext || !row.expiresAt) return 'NOT_OBTAINED';
        return row.expiresAt.getTime() > Date.now() ? 'VALID' : 'EXPIRED';
      },
    }),
    refreshedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'OAUTH2_CLIENT_CREDENTIALS: when the current access token was obtained.',
      resolve: async (b, _, ctx) => (await tokenOf(b, ctx))?.refreshedAt ?? null,
    }),
    failures: t.int({
      nullable: true,
      description: 'OAUTH2_CLIENT_CREDENTIALS: token requests failed in a row (0 after a success).',
      resolve: async (b, _, ctx) => (isOAuth2(b) ? ((await tokenOf(b, ctx))?.failures ?? 0) : null),
    }),
    cooldownUntil: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'OAUTH2_CLIENT_CREDENTIALS: after failures, no token request is made before this time.',
      resolve: async (b, _, ctx) => {
        const until = (await tokenOf(b, ctx))?.cooldownUntil;
        return until && until.getTime() > Date.now() ? until : null;
      },
    }),
    lastError: t.string({
      nullable: true,
      description: "OAUTH2_CLIENT_CREDENTIALS: why the last token request failed, in the hub's words (never the endpoint's answer).",
      resolve: async (b, _, ctx) => {
        const row = await tokenOf(b, ctx);
        return row?.failures ? row.lastError : null;
      },
    }),
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
    tokenUrl: t.string({ description: 'OAUTH2_CLIENT_CREDENTIALS: the token endpoint (http or https, no user info, query or fragment).' }),
    clientId: t.string({ description: 'OAUTH2_CLIENT_CREDENTIALS: sent with clientSecret as HTTP Basic authentication to tokenUrl.' }),
    clientSecret: t.string({ description: 'OAUTH2_CLIENT_CREDENTIALS: stored encrypted, sent only to tokenUrl.' }),
    scope: t.string({ description: 'OAUTH2_CLIENT_CREDENTIALS, optional: space-separated scopes asked for.' }),
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

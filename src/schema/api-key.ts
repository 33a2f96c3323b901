import type { ApiKey } from '../generated/prisma/client.js';
import { issueApiKey, revokeApiKey } from '../registry/callers.js';
import { builder } from './builder.js';

export const ApiKeyRef = builder.objectRef<ApiKey>('ApiKey');
ApiKeyRef.implement({
  description: 'An API key, without the key itself: only its hash is stored.',
  fields: (t) => ({
    id: t.exposeID('id'),
    prefix: t.exposeString('prefix', { description: 'The start of the key, to recognise it.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true, description: 'Accurate to about a minute.' }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
  }),
});

const IssuedApiKeyRef = builder.objectRef<{ apiKey: string; key: ApiKey }>('IssuedApiKey');
IssuedApiKeyRef.implement({
  fields: (t) => ({
    apiKey: t.exposeString('apiKey', { description: 'The API key. Shown this once; only its hash is stored.' }),
    key: t.field({ type: ApiKeyRef, resolve: (k) => k.key }),
  }),
});

builder.mutationFields((t) => ({
  issueApiKey: t.field({
    type: IssuedApiKeyRef,
    authScopes: { admin: true },
    description: 'A further key for the caller (for rotation): the old ones stay valid until revoked.',
    args: { callerId: t.arg.id({ required: true }), expiresAt: t.arg({ type: 'DateTime' }) },
    resolve: (_, { callerId, expiresAt }, ctx) => issueApiKey(ctx.services.prisma, String(callerId), expiresAt),
  }),
  revokeApiKey: t.field({
    type: ApiKeyRef,
    authScopes: { admin: true },
    description: 'Takes effect on the next request.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => revokeApiKey(ctx.services.prisma, String(id)),
  }),
}));

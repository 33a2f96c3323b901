// The SchemaBuilder: plugins, context, scalars and auth scopes. Types live in one file each.
import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import { isAdmin } from '../access/principal.js';
import type { HubContext } from '../context.js';
import { forbidden } from '../errors.js';

export const builder = new SchemaBuilder<{
  Context: HubContext;
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    DateTime: { Input: Date; Output: Date };
  };
  AuthScopes: { admin: boolean };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // A disabled admin is no admin: disabling a key's caller cuts it off everywhere.
    authScopes: (ctx) => ({ admin: isAdmin(ctx.principal) && !ctx.principal.disabled }),
    unauthorizedError: () => forbidden('This needs an admin API key.'),
  },
});

builder.addScalarType('JSON', JSONResolver);
builder.addScalarType('DateTime', DateTimeResolver);

builder.queryType({});
builder.mutationType({});

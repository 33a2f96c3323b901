import { CredentialKind, HttpMethod, Role, SystemMode } from '../generated/prisma/enums.js';
import { builder } from './builder.js';

export const SystemModeEnum = builder.enumType(SystemMode, {
  name: 'SystemMode',
  description: 'EXCLUSIVE: one deployment per tenant. SHARED: one deployment for all tenants, routed by a header.',
});
export const HttpMethodEnum = builder.enumType(HttpMethod, { name: 'HttpMethod' });
export const CredentialKindEnum = builder.enumType(CredentialKind, { name: 'CredentialKind' });
export const RoleEnum = builder.enumType(Role, { name: 'Role' });

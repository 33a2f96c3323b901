// Who is asking: resolved once per request from the bearer API key.
import type { Role } from '../generated/prisma/enums.js';

export interface Principal {
  role: Role;
  callerId: string;
  /** the caller's own tenant, if it belongs to one */
  tenantId: string | null;
  apiKeyId: string;
  /** a disabled caller (or its disabled tenant) may authenticate but do nothing */
  disabled: boolean;
  /** the caller's own invoke quota per minute; null: the hub's default */
  quotaPerMinute: number | null;
}

export const isAdmin = (p: Principal) => p.role === 'ADMIN';

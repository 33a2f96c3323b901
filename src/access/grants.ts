// Does a caller's grant cover (tenant, system, method, path) now?
import type { HttpMethod } from '../generated/prisma/enums.js';

export interface GrantRule {
  tenantId: string;
  /** null: every system of the tenant */
  systemId: string | null;
  /** empty: every method */
  methods: HttpMethod[];
  pathPrefix: string | null;
  expiresAt: Date | null;
}

export interface AccessRequest {
  tenantId: string;
  systemId: string;
  method: HttpMethod;
  /** a path already checked by the request builder's path rules */
  path: string;
}

export function grantCovers(grant: GrantRule, req: AccessRequest, now = Date.now()): boolean {
  return (
    grant.tenantId === req.tenantId &&
    (grant.systemId === null || grant.systemId === req.systemId) &&
    (grant.methods.length === 0 || grant.methods.includes(req.method)) &&
    (grant.expiresAt === null || grant.expiresAt.getTime() > now) &&
    (grant.pathPrefix === null || pathUnder(req.path, grant.pathPrefix))
  );
}

/** Segment-wise: "/patients" covers "/patients" and "/patients/7", not "/patients-admin". */
export function pathUnder(path: string, prefix: string): boolean {
  if (prefix === '/' || path === prefix) return true;
  const base = prefix.endsWith('/') ? prefix : prefix + '/';
  return path.startsWith(base);
}

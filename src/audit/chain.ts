// The hash chain over invocation records: each record's hash covers its fields and the previous
// record's hash, so editing or deleting a record breaks every hash after it.
import { createHash } from 'node:crypto';
import type { HttpMethod } from '../generated/prisma/enums.js';

export const GENESIS = '0'.repeat(64);

export interface InvocationEntry {
  id: string;
  createdAt: Date;
  callerId: string | null;
  tenantId: string;
  systemId: string;
  method: HttpMethod;
  path: string;
  status: number | null;
  code: string | null;
  durationMs: number;
  requestId: string;
}

export function chainHash(prevHash: string, e: InvocationEntry): string {
  const fields = [e.id, e.createdAt.toISOString(), e.callerId, e.tenantId, e.systemId, e.method, e.path, e.status, e.code, e.durationMs, e.requestId];
  return createHash('sha256').update(prevHash).update('\n').update(JSON.stringify(fields)).digest('hex');
}

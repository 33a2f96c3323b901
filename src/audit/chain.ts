// The hash chain over invocation records: each record's hash covers its fields and the previous
// record's hash, so editing or deleting a record breaks every hash after it.
import type { HttpMethod } from '../generated/prisma/enums.js';
import { sha256hex } from '../utils/sha256.js';

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

// Records come in bursts within one millisecond (a document's invoke fields): format each once.
let lastMs = Number.NaN;
let lastIso = '';
/** The record's time as the hash covers it (ISO 8601, milliseconds, UTC). */
export function isoOf(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = date.toISOString();
  }
  return lastIso;
}

/** The record's hashed fields as JSON text: what chainHash covers. */
export function entryFieldsJson(e: InvocationEntry): string {
  return JSON.stringify([e.id, isoOf(e.createdAt), e.callerId, e.tenantId, e.systemId, e.method, e.path, e.status, e.code, e.durationMs, e.requestId]);
}

/** sha256(prevHash + "\n" + the record's fields as a JSON array), hex. */
export function chainHash(prevHash: string, e: InvocationEntry, fieldsJson = entryFieldsJson(e)): string {
  return sha256hex(`${prevHash}\n${fieldsJson}`);
}

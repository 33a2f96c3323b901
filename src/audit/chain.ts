// The hash chain over invocation records: each record's hash covers its fields and the previous
// record's hash, so editing or deleting a record breaks every hash after it.
import { HttpMethod } from '../generated/prisma/enums.js';
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

/**
 * Consecutive records of one caller to one tenant's system, stored as one row: the database inserts
 * one row and updates its indexes once for them (PGlite does that on the hub's own core, ~30-40 µs
 * a row), while each record keeps its own hash in the chain.
 */
export interface RecordGroup {
  callerId: string | null;
  tenantId: string;
  systemId: string;
  records: InvocationEntry[];
}

/** at most this many records share a row, so that a page of the list reads a few small rows */
export const MAX_GROUP = 64;

/** The batch as runs of consecutive records with the same caller, tenant and system, in batch order. */
export function groupRecords(batch: readonly InvocationEntry[]): RecordGroup[] {
  const groups: RecordGroup[] = [];
  let group: RecordGroup | undefined;
  for (const e of batch) {
    if (group && group.records.length < MAX_GROUP && group.callerId === e.callerId && group.tenantId === e.tenantId && group.systemId === e.systemId) group.records.push(e);
    else groups.push((group = { callerId: e.callerId, tenantId: e.tenantId, systemId: e.systemId, records: [e] }));
  }
  return groups;
}

/** A record's own fields as a group row's `records` holds them (the others are the group's). */
export type StoredRecord = [id: string, createdAt: string, method: HttpMethod, path: string, status: number | null, code: string | null, durationMs: number, requestId: string];

export function storedRecord(e: InvocationEntry): StoredRecord {
  return [e.id, isoOf(e.createdAt), e.method, e.path, e.status, e.code, e.durationMs, e.requestId];
}

const isIsoTime = (s: string) => {
  const ms = Date.parse(s);
  return Number.isFinite(ms) && new Date(ms).toISOString() === s;
};

const METHODS: ReadonlySet<unknown> = new Set(Object.values(HttpMethod));

/**
 * A record as the writer stores it, field by field: what the chain's verification accepts. The
 * time must be the exact text toISOString gives, so that no other text (another offset, more
 * digits) verifies as the hashed time while reading back as another one.
 */
export function isStoredRecord(r: unknown): r is StoredRecord {
  if (!Array.isArray(r) || r.length !== 8) return false;
  const [id, createdAt, method, path, status, code, durationMs, requestId] = r as unknown[];
  return (
    typeof id === 'string' &&
    typeof createdAt === 'string' &&
    isIsoTime(createdAt) &&
    METHODS.has(method) &&
    typeof path === 'string' &&
    (status === null || Number.isInteger(status)) &&
    (code === null || typeof code === 'string') &&
    typeof durationMs === 'number' &&
    Number.isFinite(durationMs) &&
    typeof requestId === 'string'
  );
}

type GroupColumns = { callerId: string | null; tenantId: string; systemId: string };

/** A group row's stored records as whole records, the group's columns filled in. */
export function entriesOf(row: GroupColumns, stored: readonly StoredRecord[]): InvocationEntry[] {
  return stored.map(([id, createdAt, method, path, status, code, durationMs, requestId]) => ({ id, createdAt: new Date(createdAt), callerId: row.callerId, tenantId: row.tenantId, systemId: row.systemId, method, path, status, code, durationMs, requestId }));
}

/** A stored group row read back as its records (throws on text that is not a records array). */
export function recordsOf(row: GroupColumns & { records: string }): InvocationEntry[] {
  const parsed: unknown = JSON.parse(row.records);
  if (!Array.isArray(parsed)) throw new Error('a group row holds no records array');
  if (!parsed.every((r: unknown) => Array.isArray(r) && r.length === 8)) throw new Error('a group row holds a malformed record');
  return entriesOf(row, parsed as StoredRecord[]);
}

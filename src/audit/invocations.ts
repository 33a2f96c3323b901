// Reading invocation records: newest-first pages and the chain verification.
import type { Prisma } from '../db/database.js';
import { badInput } from '../errors.js';
import type { InvocationGroup } from '../generated/prisma/client.js';
import { chainHash, entriesOf, GENESIS, isStoredRecord, recordsOf, type InvocationEntry } from './chain.js';

export interface InvocationFilter {
  tenantId?: string | null;
  systemId?: string | null;
  callerId?: string | null;
}

export interface Page<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  totalCount: number;
}

export const MAX_PAGE = 500;

export function pageSize(first: number | null | undefined, fallback = 50): number {
  const n = first ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw badInput(`first must be from 1 to ${MAX_PAGE}.`);
  return n;
}

export function encodeCursor(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): string | undefined {
  if (cursor == null) return undefined;
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!value || encodeCursor(value) !== cursor) throw badInput('after is not a cursor this list gave out.');
  return value;
}

// A record's cursor is its group's seq and its place in the group ("seq.index"); a bare "seq" (the
// cursors given out before records were grouped) means after the whole group.
const MAX_SEQ = 2n ** 63n - 1n;
const CURSOR = /^(\d{1,19})(?:\.(\d{1,9}))?$/;

export async function listInvocations(prisma: Prisma, filter: InvocationFilter, first: number | null | undefined, after: string | null | undefined): Promise<Page<InvocationEntry>> {
  const take = pageSize(first);
  const afterValue = decodeCursor(after);
  const afterMatch = afterValue === undefined ? undefined : CURSOR.exec(afterValue);
  const afterSeq = afterMatch && BigInt(afterMatch[1]!);
  if (afterMatch === null || (afterSeq != null && afterSeq > MAX_SEQ)) throw badInput('after is not a cursor this list gave out.');
  // records of the cursor's own group still to list: those before its index
  const afterIndex = afterMatch ? Number(afterMatch[2] ?? 0) : 0;
  const where = {
    ...(filter.tenantId != null && { tenantId: filter.tenantId }),
    ...(filter.systemId != null && { systemId: filter.systemId }),
    ...(filter.callerId != null && { callerId: filter.callerId }),
  };
  // Every group holds a record, so take + 1 records lie in the take + 2 newest groups (the cursor's
  // own group may have none left).
  const [rows, total] = await Promise.all([
    prisma.invocationGroup.findMany({
      where: { ...where, ...(afterSeq != null && { seq: { lte: afterSeq } }) },
      orderBy: { seq: 'desc' },
      take: take + 2,
    }),
    prisma.invocationGroup.aggregate({ where, _sum: { count: true } }),
  ]);
  const edges: Page<InvocationEntry>['edges'] = [];
  let more = false;
  for (const row of rows) {
    const records = recordsOf(row);
    const from = row.seq === afterSeq ? Math.min(afterIndex, records.length) : records.length;
    for (let i = from - 1; i >= 0; i--) {
      if (edges.length === take) {
        more = true;
        break;
      }
      edges.push({ cursor: encodeCursor(`${row.seq}.${i}`), node: records[i]! });
    }
    if (more) break;
  }
  return { edges, pageInfo: { hasNextPage: more, endCursor: edges.at(-1)?.cursor ?? null }, totalCount: total._sum.count ?? 0 };
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  firstBrokenId: string | null;
}

/**
 * Re-computes the chain, oldest first. The oldest stored row must follow fromHash: the chain's
 * start, or, once old rows were archived and deleted (retention), the last archived record's hash,
 * which the operator kept with the archive. A group whose records do not hash to its stored hash
 * is reported by its first record's id (a group does not say which of its records was edited).
 */
export async function verifyChain(prisma: Prisma, fromHash = GENESIS, pageRows = 1000): Promise<ChainVerification> {
  let prev = fromHash;
  let checked = 0;
  let cursor: bigint | undefined;
  for (;;) {
    const rows = await prisma.invocationGroup.findMany({
      where: cursor === undefined ? {} : { seq: { gt: cursor } },
      orderBy: { seq: 'asc' },
      take: pageRows,
    });
    for (const row of rows) {
      const group = checkGroup(prev, row);
      if (!group.ok) return { ok: false, checked, firstBrokenId: group.firstId };
      prev = row.hash;
      checked += group.count;
    }
    if (rows.length < pageRows) return { ok: true, checked, firstBrokenId: null };
    cursor = rows.at(-1)!.seq;
  }
}

/**
 * Whether the row follows prev and its records hash to its stored hash; firstId names its first
 * record (as stored in its records when they can be read, else the row's id).
 */
function checkGroup(prev: string, row: InvocationGroup): { ok: boolean; count: number; firstId: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.records);
  } catch {
    return { ok: false, count: 0, firstId: row.id };
  }
  const first: unknown = Array.isArray(parsed) && Array.isArray(parsed[0]) ? parsed[0][0] : undefined;
  const firstId = typeof first === 'string' ? first : row.id;
  if (row.prevHash !== prev || !Array.isArray(parsed) || parsed.length === 0 || parsed.length !== row.count || firstId !== row.id || !parsed.every(isStoredRecord)) return { ok: false, count: 0, firstId };
  let hash = prev;
  for (const e of entriesOf(row, parsed)) hash = chainHash(hash, e);
  return { ok: hash === row.hash, count: parsed.length, firstId };
}

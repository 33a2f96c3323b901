// Reading invocation records: newest-first pages and the chain verification.
import type { Prisma } from '../db/database.js';
import { badInput } from '../errors.js';
import type { Invocation } from '../generated/prisma/client.js';
import { chainHash, GENESIS } from './chain.js';

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

export async function listInvocations(prisma: Prisma, filter: InvocationFilter, first: number | null | undefined, after: string | null | undefined): Promise<Page<Invocation>> {
  const take = pageSize(first);
  const afterSeq = decodeCursor(after);
  if (afterSeq !== undefined && !/^\d+$/.test(afterSeq)) throw badInput('after is not a cursor this list gave out.');
  const where = {
    ...(filter.tenantId != null && { tenantId: filter.tenantId }),
    ...(filter.systemId != null && { systemId: filter.systemId }),
    ...(filter.callerId != null && { callerId: filter.callerId }),
  };
  const [rows, totalCount] = await Promise.all([
    prisma.invocation.findMany({
      where: { ...where, ...(afterSeq !== undefined && { seq: { lt: BigInt(afterSeq) } }) },
      orderBy: { seq: 'desc' },
      take: take + 1,
    }),
    prisma.invocation.count({ where }),
  ]);
  const nodes = rows.slice(0, take);
  const edges = nodes.map((node) => ({ cursor: encodeCursor(node.seq.toString()), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > take, endCursor: edges.at(-1)?.cursor ?? null }, totalCount };
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  firstBrokenId: string | null;
}

export async function verifyChain(prisma: Prisma, pageRows = 1000): Promise<ChainVerification> {
  let prev = GENESIS;
  let checked = 0;
  let cursor: bigint | undefined;
  for (;;) {
    const rows = await prisma.invocation.findMany({
      where: cursor === undefined ? {} : { seq: { gt: cursor } },
      orderBy: { seq: 'asc' },
      take: pageRows,
    });
    for (const r of rows) {
      if (r.prevHash !== prev || chainHash(prev, r) !== r.hash) return { ok: false, checked, firstBrokenId: r.id };
      prev = r.hash;
      checked++;
    }
    if (rows.length < pageRows) return { ok: true, checked, firstBrokenId: null };
    cursor = rows.at(-1)!.seq;
  }
}

// Cursor pagination shared by the admin lists (ordered by id) and the invocation list.
import type { ObjectRef } from '@pothos/core';
import { decodeCursor, encodeCursor, pageSize, type Page } from '../audit/invocations.js';
import { builder } from './builder.js';

export const PageInfoRef = builder.objectRef<Page<unknown>['pageInfo']>('PageInfo');
PageInfoRef.implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

export function connectionType<T>(name: string, node: ObjectRef<any, T>) {
  const Edge = builder.objectRef<{ cursor: string; node: T }>(`${name}Edge`).implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: node, resolve: (e) => e.node as never }) }),
  });
  return builder.objectRef<Page<T>>(`${name}Connection`).implement({
    fields: (t) => ({
      edges: t.field({ type: [Edge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });
}

interface ByIdDelegate<T> {
  findMany(args: { where: object; orderBy: { id: 'asc' }; take: number }): Promise<T[]>;
  count(args?: object): Promise<number>;
}

/** A page of registry rows in id order. */
export async function pageById<T extends { id: string }>(delegate: ByIdDelegate<T>, first: number | null | undefined, after: string | null | undefined): Promise<Page<T>> {
  const take = pageSize(first);
  const afterId = decodeCursor(after);
  const [rows, totalCount] = await Promise.all([
    delegate.findMany({ where: afterId === undefined ? {} : { id: { gt: afterId } }, orderBy: { id: 'asc' }, take: take + 1 }),
    delegate.count(),
  ]);
  const edges = rows.slice(0, take).map((node) => ({ cursor: encodeCursor(node.id), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > take, endCursor: edges.at(-1)?.cursor ?? null }, totalCount };
}


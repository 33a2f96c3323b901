// Row locks taken inside a registry write's transaction, so that what it checked still holds when
// it writes (the hub's transactions run READ COMMITTED: each statement sees what is committed).
// - A parent read FOR KEY SHARE cannot be deleted until the write commits: "the tenant exists" still
//   holds when the row that refers to it is inserted. Without it a delete in between made the insert
//   fail on its foreign key (an INTERNAL_SERVER_ERROR); now the delete waits and takes the new row
//   with it (or is refused, as deleteTenant is while callers belong to the tenant).
// - A row read FOR SHARE cannot change either (bindSystem reads the system's mode).
// - A row locked FOR UPDATE first holds off both while its write counts what refers to it.
import type { Prisma } from '../db/database.js';

type Table = 'Tenant' | 'System' | 'Caller';
type Tx = Pick<Prisma, '$queryRawUnsafe'>;

async function lock(tx: Tx, table: Table, id: string, mode: 'FOR KEY SHARE' | 'FOR SHARE' | 'FOR UPDATE'): Promise<boolean> {
  const rows = await tx.$queryRawUnsafe<unknown[]>(`SELECT 1 FROM "${table}" WHERE "id" = $1 ${mode}`, id);
  return rows.length > 0;
}

/** Whether the row exists; if so, it cannot be deleted before this transaction ends. */
export const existsKept = (tx: Tx, table: Table, id: string) => lock(tx, table, id, 'FOR KEY SHARE');
/** Whether the row exists; if so, it cannot change before this transaction ends. */
export const existsUnchanged = (tx: Tx, table: Table, id: string) => lock(tx, table, id, 'FOR SHARE');
/** Whether the row exists; if so, this transaction alone may write it or hold it until it ends. */
export const lockForWrite = (tx: Tx, table: Table, id: string) => lock(tx, table, id, 'FOR UPDATE');

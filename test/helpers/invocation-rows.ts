// Tampering with stored invocation records the way someone with SQL access would: records live
// inside their group's row (InvocationGroup.records, a JSON array of
// [id, createdAt, method, path, status, code, durationMs, requestId]).
import type { TestDatabase } from './test-database.js';

/** the row holds the record whose id is $1 */
const HOLDS_RECORD = `"records"::jsonb @> jsonb_build_array(jsonb_build_array($1::text))`;

const FIELDS = { createdAt: 1, method: 2, path: 3, status: 4, code: 5, durationMs: 6, requestId: 7 } as const;

/** Sets one field of the record with this id, in place; the group's hashes are left as they were. */
export async function editRecord(db: Pick<TestDatabase, 'query'>, id: string, field: keyof typeof FIELDS, value: unknown): Promise<void> {
  const rows = await db.query(
    `UPDATE "InvocationGroup" SET "records" = (
       SELECT jsonb_agg(CASE WHEN r->>0 = $1 THEN jsonb_set(r, $2::text[], $3::jsonb) ELSE r END ORDER BY o)::text
       FROM jsonb_array_elements("records"::jsonb) WITH ORDINALITY AS x(r, o))
     WHERE ${HOLDS_RECORD} RETURNING "seq"`,
    [id, [String(FIELDS[field])], JSON.stringify(value)],
  );
  if (rows.length !== 1) throw new Error(`no stored record ${id}`);
}

/** Removes the record with this id: its group's row when it was alone there, else from the group (count kept in step). */
export async function deleteRecord(db: Pick<TestDatabase, 'query'>, id: string): Promise<void> {
  const rows = await db.query(
    `UPDATE "InvocationGroup" SET "count" = "count" - 1, "records" = coalesce((
       SELECT jsonb_agg(r ORDER BY o)::text FROM jsonb_array_elements("records"::jsonb) WITH ORDINALITY AS x(r, o) WHERE r->>0 <> $1), '[]')
     WHERE ${HOLDS_RECORD} RETURNING "seq"`,
    [id],
  );
  if (rows.length !== 1) throw new Error(`no stored record ${id}`);
  await db.query(`DELETE FROM "InvocationGroup" WHERE "count" = 0`);
}

/** The id of the first record in the row that holds this record (verifyInvocationChain names a broken row by it). */
export async function firstOfRow(db: Pick<TestDatabase, 'query'>, id: string): Promise<string> {
  const rows = await db.query<{ id: string }>(`SELECT "id" FROM "InvocationGroup" WHERE ${HOLDS_RECORD}`, [id]);
  if (rows.length !== 1) throw new Error(`no stored record ${id}`);
  return rows[0]!.id;
}

// The audit log's batching against a real database: a flush writes what was recorded before it
// was called, so records arriving during a write wait for their own timer and go in the next
// batch (not in a write of their own right after); close() still writes everything, including
// records of calls that ended while its last write ran.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../src/audit/audit-log.js';
import { groupRecords, MAX_GROUP, type InvocationEntry, type RecordGroup } from '../src/audit/chain.js';
import { PgliteChainWriter, PostgresChainWriter, type ChainWriter } from '../src/audit/chain-writer.js';
import { listInvocations, verifyChain, type InvocationFilter } from '../src/audit/invocations.js';
import { openDatabase, type Database } from '../src/db/database.js';
import { createLogger } from '../src/log.js';
import { testDatabases } from './helpers/databases.js';
import { createTestDatabase, lockWaiters, repeatableReadByDefault, type TestDatabase } from './helpers/test-database.js';

const log = createLogger('error', () => {});

/** The real writer, with every append held until the test lets it go, and the batches it got. */
class GatedWriter implements ChainWriter {
  readonly batches: string[][] = [];
  private gates: (() => void)[] = [];
  private waiting: (() => void)[] = [];
  constructor(private readonly inner: ChainWriter) {}
  get maxBatch() {
    return this.inner.maxBatch;
  }
  async append(groups: readonly RecordGroup[]): Promise<void> {
    this.batches.push(groups.flatMap((g) => g.records.map((e) => e.path)));
    await new Promise<void>((resolve) => {
      this.gates.push(resolve);
      this.waiting.splice(0).forEach((w) => w());
    });
    await this.inner.append(groups);
  }
  /** Resolves once an append is held. */
  async held(): Promise<void> {
    if (this.gates.length) return;
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    this.gates.shift()?.();
  }
  close() {
    return this.inner.close();
  }
}

const entry = (path: string): InvocationEntry => ({
  id: randomUUID(),
  createdAt: new Date(),
  callerId: null,
  tenantId: 't1',
  systemId: 's1',
  method: 'GET',
  path,
  status: 200,
  code: null,
  durationMs: 1,
  requestId: randomUUID(),
});

describe.each(testDatabases())('audit log batching on %s', (kind) => {
  let testDb: TestDatabase;
  let db: Database;
  let writer: GatedWriter;
  let audit: AuditLog;
  let statements: number;

  beforeEach(async () => {
    testDb = await createTestDatabase(kind);
    db = await openDatabase({ url: testDb.url, dataDir: '.', poolSize: 2, log, pglite: testDb.pglite });
    statements = 0;
    const count = () => void statements++;
    writer = new GatedWriter(kind === 'postgres' ? new PostgresChainWriter(testDb.url!, 5000, count) : new PgliteChainWriter(db.pglite!, count));
    // A delay no test waits for: writes happen only when a test flushes or closes.
    audit = new AuditLog(writer, log, { flushDelayMs: 600_000 });
  });
  afterEach(async () => {
    await db.close();
    await testDb.drop();
  });

  /** A flush that the gated writer lets through at once. */
  const flushThrough = async () => {
    const flushed = audit.flush();
    await writer.held();
    writer.release();
    await flushed;
  };

  const stored = async () => (await testDb.query<{ path: string }>('SELECT "path" FROM "Invocation" ORDER BY "seq", "index"')).map((r) => r.path);

  it('writes what was recorded before the flush; a record arriving during the write waits for the next batch', { timeout: 15_000 }, async () => {
    audit.record(entry('/a'));
    audit.record(entry('/b'));
    const flushed = audit.flush();
    await writer.held();
    audit.record(entry('/c')); // arrives while /a and /b are being written
    writer.release();
    await flushed;
    expect(writer.batches).toEqual([['/a', '/b']]);
    expect(audit.pending).toBe(1);
    expect(await stored()).toEqual(['/a', '/b']);

    audit.record(entry('/d'));
    await flushThrough();
    expect(writer.batches).toEqual([['/a', '/b'], ['/c', '/d']]);
    expect(await stored()).toEqual(['/a', '/b', '/c', '/d']);
    // Every statement the writer sent was counted (hub_db_queries_total): two writes, a
    // transaction each of BEGIN, the newest hash, the INSERT and COMMIT, and on PostgreSQL the
    // statement timeout and the chain's lock (these four in one round trip).
    expect(statements).toBe(kind === 'postgres' ? 12 : 8);
    await audit.close();
  });

  it('stores every field as recorded and numbers the records from the seq column\'s own sequence', async () => {
    // Times a millisecond apart and far apart, at the edges of a second, before 1970 and far ahead
    const times = [Date.UTC(2026, 10, 27, 5, 6, 7, 891), Date.UTC(2026, 10, 27, 5, 6, 7, 892), Date.UTC(2026, 10, 27, 5, 6, 7, 999), Date.UTC(2026, 10, 27, 5, 6, 8, 0), -1, 0, 1, Date.UTC(2100, 0, 1, 0, 0, 0, 1)];
    const records = times.map((ms, i) => ({ ...entry(`/r${i}`), createdAt: new Date(ms), durationMs: 0.1 * i, status: i % 2 ? 200 : null, code: i % 2 ? null : 'UPSTREAM_TIMEOUT', callerId: i % 3 ? 'c1' : null, method: i % 2 ? ('POST' as const) : ('GET' as const) }));
    records.slice(0, 3).forEach((r) => audit.record(r));
    await flushThrough();
    records.slice(3).forEach((r) => audit.record(r));
    await flushThrough();

    const rows = await testDb.query<Record<string, unknown>>(
      `SELECT "seq"::int AS seq, "id", (extract(epoch from "createdAt") * 1000)::float8 AS ms, "callerId", "tenantId", "systemId", "method"::text AS method, "path", "status", "code", "durationMs", "requestId" FROM "Invocation" ORDER BY "seq", "index"`,
    );
    expect(rows.map(({ seq, ms, ...fields }) => ({ ...fields, createdAt: new Date(ms as number) }))).toEqual(records);
    // Consecutive records of one caller share a row: rows numbered 1, 2, ... in the records' order
    const rowOfEach = [groupRecords(records.slice(0, 3)), groupRecords(records.slice(3))].flat().flatMap((g, i) => g.records.map(() => i + 1));
    expect(rowOfEach).toEqual([1, 2, 2, 3, 4, 4, 5, 6]);
    expect(rows.map((r) => r.seq)).toEqual(rowOfEach);
    // The column's default takes the next number: the sequence handed out exactly the groups' numbers
    await testDb.query(
      `INSERT INTO "InvocationGroup" ("id", "tenantId", "systemId", "count", "records", "prevHash", "hash") VALUES ('x', 't', 's', 0, '[]', '', '')`,
    );
    expect((await testDb.query<{ seq: number }>(`SELECT "seq"::int AS seq FROM "InvocationGroup" WHERE "id" = 'x'`))[0]!.seq).toBe(7);
    await audit.close();
  });

  it('stores text with tabs, line ends, backslashes and COPY\'s markers exactly, and the chain verifies', async () => {
    // The rows travel in COPY's text format, where a tab ends a column, a line end a row, \N is
    // NULL and \. ends the data: as values they must arrive as they were recorded.
    const awkward = ['tab\there', 'line\nend', 'carriage\rreturn', 'back\\slash', '\\N', '\\.', '\\', '\\t', 'ünï\u00e7ødé ✓', ''];
    const records = awkward.map((text, i) => ({ ...entry(`/p/${text}`), tenantId: text || 't', systemId: `s${text}`, callerId: text, code: `C${text}`, requestId: `r${text}`, status: i % 2 ? null : 200 }));
    records.forEach((r) => audit.record(r));
    await flushThrough();
    const rows = await testDb.query<Record<string, unknown>>(`SELECT "id", "callerId", "tenantId", "systemId", "path", "status", "code", "requestId" FROM "Invocation" ORDER BY "seq", "index"`);
    expect(rows).toEqual(records.map(({ id, callerId, tenantId, systemId, path, status, code, requestId }) => ({ id, callerId, tenantId, systemId, path, status, code, requestId })));
    // The hashes cover the recorded values: re-computed from the stored rows, they match.
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: records.length, firstBrokenId: null });
    await audit.close();
  });

  it('stores a lone surrogate as U+FFFD and hashes what it stores: the chain verifies', async () => {
    // invoke-service keeps lone surrogates out of caller-chosen text; the writer guards any field.
    const records = [{ ...entry('/half-\ud83d'), tenantId: '\ude00t', systemId: 's\ud83d', callerId: '\ud800', code: 'C\udfff', requestId: 'r\ud83d' }, entry('/after')];
    records.forEach((r) => audit.record(r));
    await flushThrough();
    const rows = await testDb.query<Record<string, unknown>>(`SELECT "callerId", "tenantId", "systemId", "path", "code", "requestId" FROM "Invocation" ORDER BY "seq", "index"`);
    expect(rows[0]).toEqual({ callerId: '\ufffd', tenantId: '\ufffdt', systemId: 's\ufffd', path: '/half-\ufffd', code: 'C\ufffd', requestId: 'r\ufffd' });
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 2, firstBrokenId: null });
    await audit.close();
  });

  it('writes a backlog larger than a batch in full batches, in order, with the chain intact', { timeout: 60_000 }, async () => {
    // What a database that was away for a while finds queued: more than two writes' worth.
    const records = Array.from({ length: 2 * writer.maxBatch + 123 }, (_, i) => entry(`/backlog/${i}`));
    records.forEach((r) => audit.record(r));
    const flushed = audit.flush();
    for (let i = 0; i < 3; i++) {
      await writer.held();
      writer.release();
    }
    await flushed;
    expect(writer.batches.map((b) => b.length)).toEqual([writer.maxBatch, writer.maxBatch, 123]);
    const ids = await testDb.query<{ id: string }>('SELECT "id" FROM "Invocation" ORDER BY "seq", "index"');
    expect(ids.map((r) => r.id)).toEqual(records.map((r) => r.id));
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: records.length, firstBrokenId: null });
    await audit.close();
  });

  it("stores consecutive records of one caller to one tenant's system as one row; the view, the list and the chain still show each record", async () => {
    const of = (path: string, systemId: string, callerId = 'c1') => ({ ...entry(path), systemId, callerId });
    const [a1, a2, b, a3, c] = [of('/a1', 's1'), of('/a2', 's1'), of('/b', 's2'), of('/a3', 's1'), of('/c', 's1', 'c2')];
    [a1, a2, b, a3, c].forEach((r) => audit.record(r));
    await flushThrough();
    // Runs of consecutive records, in the order they were recorded
    const groups = await testDb.query<{ seq: string; id: string; count: number; systemId: string; callerId: string }>('SELECT "seq"::text AS seq, "id", "count", "systemId", "callerId" FROM "InvocationGroup" ORDER BY "seq"');
    expect(groups.map(({ id, count, systemId, callerId }) => ({ id, count, systemId, callerId }))).toEqual([
      { id: a1.id, count: 2, systemId: 's1', callerId: 'c1' },
      { id: b.id, count: 1, systemId: 's2', callerId: 'c1' },
      { id: a3.id, count: 1, systemId: 's1', callerId: 'c1' },
      { id: c.id, count: 1, systemId: 's1', callerId: 'c2' },
    ]);
    expect(await stored()).toEqual(['/a1', '/a2', '/b', '/a3', '/c']);
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 5, firstBrokenId: null });

    // Newest first, one record a page: the cursor walks through a group record by record.
    const walk = async (filter: InvocationFilter, first: number, after?: string) => {
      const pages: string[][] = [];
      let total = -1;
      for (;;) {
        const page = await listInvocations(db.prisma, filter, first, after);
        pages.push(page.edges.map((e) => e.node.path));
        total = page.totalCount;
        if (!page.pageInfo.hasNextPage) return { pages, total };
        after = page.pageInfo.endCursor!;
      }
    };
    expect(await walk({}, 1)).toEqual({ pages: [['/c'], ['/a3'], ['/b'], ['/a2'], ['/a1']], total: 5 });
    expect(await walk({}, 2)).toEqual({ pages: [['/c', '/a3'], ['/b', '/a2'], ['/a1']], total: 5 });
    expect(await walk({ systemId: 's1' }, 3)).toEqual({ pages: [['/c', '/a3', '/a2'], ['/a1']], total: 4 });
    expect(await walk({ callerId: 'c1', systemId: 's1' }, 2)).toEqual({ pages: [['/a3', '/a2'], ['/a1']], total: 3 });
    // Every field of a record comes back as recorded
    const listed = await listInvocations(db.prisma, { systemId: 's2' }, 5, null);
    expect(listed.edges.map((e) => e.node)).toEqual([b]);
    // A cursor given out before records were grouped (a bare seq) lists what came before that row
    const cursorOfGroup = (i: number) => Buffer.from(groups[i]!.seq).toString('base64url');
    expect(await walk({}, 10, cursorOfGroup(2))).toEqual({ pages: [['/b', '/a2', '/a1']], total: 5 });
    expect(await walk({}, 10, cursorOfGroup(0))).toEqual({ pages: [[]], total: 5 });
    // Tampering inside a row of two is found, and named by the row's first record
    const rowText = async () => (await testDb.query<{ records: string }>(`SELECT "records" FROM "InvocationGroup" WHERE "id" = $1`, [a1.id]))[0]!.records;
    const original = await rowText();
    const tampered = async (records: unknown[]) => {
      await testDb.query(`UPDATE "InvocationGroup" SET "records" = $2 WHERE "id" = $1`, [a1.id, JSON.stringify(records)]);
      const verdict = await verifyChain(db.prisma);
      await testDb.query(`UPDATE "InvocationGroup" SET "records" = $2 WHERE "id" = $1`, [a1.id, original]);
      return verdict;
    };
    const [r1, r2] = JSON.parse(original) as unknown[][];
    const broken = { ok: false, checked: 0, firstBrokenId: a1.id };
    expect(await tampered([r1, [...r2!.slice(0, 4), 201, ...r2!.slice(5)]])).toEqual(broken); // the second record's status
    expect(await tampered([r1, [...r2!.slice(0, 1), (r2![1] as string).replace('Z', '+00:00'), ...r2!.slice(2)]])).toEqual(broken); // the same instant, other text
    expect(await tampered([r1, [...r2!.slice(0, 6), '1', ...r2!.slice(7)]])).toEqual(broken); // durationMs as text
    expect(await tampered([r1])).toEqual(broken); // a record removed (count no longer matches)
    expect(await tampered([r2, r1])).toMatchObject({ ok: false, firstBrokenId: a2.id }); // swapped: the row's id no longer leads
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 5, firstBrokenId: null });
    for (const bad of ['x', `${groups[0]!.seq}.`, `${groups[0]!.seq}.1.2`, '-1', '9223372036854775808', '99999999999999999999']) {
      await expect(listInvocations(db.prisma, {}, 1, Buffer.from(bad).toString('base64url'))).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
    await audit.close();
  });

  it('verifies rows left after the oldest were deleted (retention) from the last deleted hash, and only from it', async () => {
    const records = Array.from({ length: 6 }, (_, i) => ({ ...entry(`/kept/${i}`), callerId: `c${i}` })); // a row each
    records.forEach((r) => audit.record(r));
    await flushThrough();
    const [archived] = await testDb.query<{ hash: string }>(`SELECT "hash" FROM "InvocationGroup" WHERE "id" = $1`, [records[1]!.id]);
    await testDb.query(`DELETE FROM "InvocationGroup" WHERE "id" = ANY($1)`, [[records[0]!.id, records[1]!.id]]);
    // From the chain's start, the oldest row left no longer follows anything stored
    expect(await verifyChain(db.prisma)).toEqual({ ok: false, checked: 0, firstBrokenId: records[2]!.id });
    expect(await verifyChain(db.prisma, archived!.hash)).toEqual({ ok: true, checked: 4, firstBrokenId: null });
    expect(await verifyChain(db.prisma, 'f'.repeat(64))).toEqual({ ok: false, checked: 0, firstBrokenId: records[2]!.id });
    // A row deleted after the new start is still named
    await testDb.query(`DELETE FROM "InvocationGroup" WHERE "id" = $1`, [records[3]!.id]);
    expect(await verifyChain(db.prisma, archived!.hash)).toEqual({ ok: false, checked: 1, firstBrokenId: records[4]!.id });
    await audit.close();
  });

  it(`puts at most ${MAX_GROUP} records in a row`, async () => {
    const records = Array.from({ length: 2 * MAX_GROUP + 1 }, (_, i) => entry(`/run/${i}`));
    records.forEach((r) => audit.record(r));
    await flushThrough();
    const groups = await testDb.query<{ id: string; count: number }>('SELECT "id", "count" FROM "InvocationGroup" ORDER BY "seq"');
    expect(groups).toEqual([
      { id: records[0]!.id, count: MAX_GROUP },
      { id: records[MAX_GROUP]!.id, count: MAX_GROUP },
      { id: records[2 * MAX_GROUP]!.id, count: 1 },
    ]);
    expect((await stored()).length).toBe(records.length);
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: records.length, firstBrokenId: null });
    await audit.close();
  });

  it('close() writes everything, records of calls that ended during its last write included', async () => {
    audit.record(entry('/a'));
    const closed = audit.close();
    await writer.held();
    audit.record(entry('/late'));
    writer.release();
    await writer.held();
    writer.release();
    await closed;
    expect(writer.batches).toEqual([['/a'], ['/late']]);
    expect(await stored()).toEqual(['/a', '/late']);
    expect(audit.pending).toBe(0);
  });
});

/** The real writer, with a fault after or instead of chosen writes: what a flaky database does. */
class FaultyWriter implements ChainWriter {
  readonly writes: string[][] = [];
  /** the next write commits, then fails as if the connection dropped before the acknowledgement */
  loseNextAck = false;
  constructor(
    private readonly inner: ChainWriter,
    /** a write holding such a record is refused as a constraint would (not transient) */
    private readonly refuses: (e: InvocationEntry) => boolean = () => false,
  ) {}
  get maxBatch() {
    return this.inner.maxBatch;
  }
  async append(groups: readonly RecordGroup[]): Promise<void> {
    this.writes.push(groups.flatMap((g) => g.records.map((e) => e.path)));
    if (groups.some((g) => g.records.some(this.refuses))) throw Object.assign(new Error('new row violates check constraint'), { code: '23514' });
    await this.inner.append(groups);
    if (this.loseNextAck) {
      this.loseNextAck = false;
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    }
  }
  close() {
    return this.inner.close();
  }
}

describe.each(testDatabases())('audit log retries on %s', (kind) => {
  let testDb: TestDatabase;
  let db: Database;
  let lines: { msg: string; record?: { path: string } }[];
  const logTo = createLogger('warn', (line) => void lines.push(JSON.parse(line)));
  const open = async (refuses?: (e: InvocationEntry) => boolean) => {
    testDb = await createTestDatabase(kind);
    db = await openDatabase({ url: testDb.url, dataDir: '.', poolSize: 2, log, pglite: testDb.pglite });
    lines = [];
    const writer = new FaultyWriter(kind === 'postgres' ? new PostgresChainWriter(testDb.url!, 5000) : new PgliteChainWriter(db.pglite!), refuses);
    return { writer, audit: new AuditLog(writer, logTo, { flushDelayMs: 600_000, retryDelayMs: 600_000 }) };
  };
  afterEach(async () => {
    await db.close();
    await testDb.drop();
  });
  const stored = async () => (await testDb.query<{ path: string }>('SELECT "path" FROM "Invocation" ORDER BY "seq", "index"')).map((r) => r.path);

  it('retries a write whose acknowledgement was lost with the same records: none is stored twice, a newer one is not lost', async () => {
    const { writer, audit } = await open();
    const other = (path: string) => ({ ...entry(path), callerId: 'c2' });
    audit.record(entry('/a1'));
    audit.record(entry('/a2'));
    audit.record(other('/b1'));
    writer.loseNextAck = true;
    await expect(audit.flush()).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await stored()).toEqual(['/a1', '/a2', '/b1']); // it did commit
    // A record of the same caller to the same system as the write's last group arrives before the
    // retry: it must not join that group, which is stored already.
    audit.record(other('/b2'));
    await audit.flush();
    expect(writer.writes).toEqual([['/a1', '/a2', '/b1'], ['/a1', '/a2', '/b1'], ['/b2']]);
    expect(await stored()).toEqual(['/a1', '/a2', '/b1', '/b2']);
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 4, firstBrokenId: null });
    expect(lines.map((l) => l.msg.split(' (')[0])).toEqual(['writing invocation records failed; they stay queued and are retried', 'a retried write of invocation records found them stored already']);
    expect(audit.pending).toBe(0);
    await audit.close();
  });

  it('writes the records of a refused group one by one: only the refused record goes to the log', async () => {
    const { writer, audit } = await open((e) => e.path === '/bad');
    for (const path of ['/x1', '/x2', '/bad', '/x3']) audit.record(entry(path));
    audit.record({ ...entry('/other'), systemId: 's2' });
    await audit.flush();
    expect(writer.writes).toEqual([['/x1', '/x2', '/bad', '/x3', '/other'], ['/x1', '/x2', '/bad', '/x3'], ['/x1'], ['/x2'], ['/bad'], ['/x3'], ['/other']]);
    expect(await stored()).toEqual(['/x1', '/x2', '/x3', '/other']);
    expect(lines.map((l) => `${l.msg} ${l.record?.path}`)).toEqual(['an invocation record was refused by the database; kept here /bad']);
    expect(await verifyChain(db.prisma)).toEqual({ ok: true, checked: 4, firstBrokenId: null });
    await audit.close();
  });
});

describe.skipIf(!testDatabases().includes('postgres'))('the PostgreSQL audit writer', () => {
  /**
   * A fresh database, its writer, and a holder session that has locked the InvocationGroup table in an
   * open transaction; `prepare` runs before the writer connects. Everything is closed afterwards.
   */
  const withTableLocked = async (
    run: (t: { testDb: TestDatabase; writer: PostgresChainWriter; holder: pg.Client }) => Promise<void>,
    prepare?: (testDb: TestDatabase) => Promise<unknown>,
  ) => {
    const testDb = await createTestDatabase('postgres');
    const db = await openDatabase({ url: testDb.url, dataDir: '.', poolSize: 2, log });
    await prepare?.(testDb);
    const writer = new PostgresChainWriter(testDb.url!, 5000);
    const holder = new pg.Client({ connectionString: testDb.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE "InvocationGroup" IN ACCESS EXCLUSIVE MODE');
      await run({ testDb, writer, holder });
    } finally {
      await holder.end();
      await writer.close();
      await db.close();
      await testDb.drop();
    }
  };

  // BEGIN, the statement timeout, the chain lock and the newest hash go in one round trip: a
  // failure inside it must still roll the transaction back, or the connection would go back to the
  // pool inside an aborted transaction and refuse every later write.
  it('rolls back a write cancelled while it waits, and its connection serves the next writes', { timeout: 20_000 }, () =>
    withTableLocked(async ({ testDb, writer, holder }) => {
      // The expectation is attached before the cancel: the rejection may come before the next line runs.
      const cancelled = expect(writer.append(groupRecords([entry('/cancelled')]))).rejects.toMatchObject({ code: '57014' });
      await testDb.query('SELECT pg_cancel_backend($1)', [(await lockWaiters(testDb))[0]]);
      await cancelled;
      await holder.query('ROLLBACK');

      for (const path of ['/b', '/c', '/d']) await writer.append(groupRecords([entry(path)]));
      const rows = await testDb.query<{ path: string }>('SELECT "path" FROM "Invocation" ORDER BY "seq", "index"');
      expect(rows.map((r) => r.path)).toEqual(['/b', '/c', '/d']);
    }));

  // Under REPEATABLE READ a transaction's snapshot is taken by its first query: the one that waits
  // for the chain's lock. A record committed meanwhile would be invisible to the newest-hash read,
  // and the write would chain onto the hash before it (a fork).
  it("chains onto a record committed while it waited, whatever the database's default isolation", { timeout: 20_000 }, () =>
    withTableLocked(
      async ({ testDb, writer, holder }) => {
        const written = writer.append(groupRecords([entry('/after')]));
        await lockWaiters(testDb);
        const hash = 'a'.repeat(64);
        await holder.query(
          `INSERT INTO "InvocationGroup" ("id", "tenantId", "systemId", "count", "records", "prevHash", "hash") VALUES ('first', 't', 's', 1, '[["first","2026-11-27T00:00:00.000Z","GET","/first",200,null,1,"r"]]', $1, $2)`,
          ['0'.repeat(64), hash],
        );
        await holder.query('COMMIT');
        await written;
        const rows = await testDb.query<{ path: string; prevHash: string }>('SELECT i."path", g."prevHash" FROM "Invocation" i JOIN "InvocationGroup" g USING ("seq") ORDER BY "seq"');
        expect(rows).toEqual([
          { path: '/first', prevHash: '0'.repeat(64) },
          { path: '/after', prevHash: hash },
        ]);
      },
      repeatableReadByDefault,
    ));
});

// Attack suite, tamper-evident audit (issue 3, part 7): who sees the records of a cross-tenant call,
// and whether verifyInvocationChain names the first record that was altered (any field), removed
// from the middle, or forged into the chain. Only admins may verify the chain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from '../helpers/seed.js';
import { startCanary, type Canary } from '../helpers/security-canary.js';
import { startTestHub, type TestHub } from '../helpers/test-hub.js';

interface Node {
  id: string;
  callerId: string | null;
  tenantId: string;
  systemId: string;
  path: string;
  status: number | null;
  code: string | null;
}
interface Row {
  seq: string | number;
  /** the record's place in its group's row */
  index: number;
  id: string;
  status: number | null;
  hash: string;
  prevHash: string;
}

const VERIFY = `{ verifyInvocationChain { ok checked firstBrokenId } }`;
const LIST = `query($tenantId: ID, $callerId: ID, $systemId: ID) {
  invocations(first: 500, tenantId: $tenantId, callerId: $callerId, systemId: $systemId) { totalCount edges { node { id callerId tenantId systemId path status code } } } }`;

describe.each(testDatabases())('audit chain on %s', (kind) => {
  let hub: TestHub;
  let up: Canary;
  let globexKey: string; // globex's portal, granted acme's CRM: the cross-tenant caller
  let acmeKey: string; // acme's own app
  let bystanderKey: string; // a caller of a third tenant without grants

  const verify = async () => (await hub.admin(VERIFY)).verifyInvocationChain as { ok: boolean; checked: number; firstBrokenId: string | null };
  const list = async (vars: Record<string, unknown>, key?: string) => {
    const res = await hub.gql(LIST, vars, key ? { key } : undefined);
    expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
    return res.body.data.invocations as { totalCount: number; edges: { node: Node }[] };
  };
  /** Stored records in chain order (flushed first through an admin read). */
  const rows = async () => {
    await hub.admin(`{ invocations(first: 1) { totalCount } }`);
    return hub.db.query<Row>(`SELECT i.seq, i.index, i.id, i.status, g.hash, g."prevHash" FROM "Invocation" i JOIN "InvocationGroup" g ON g.seq = i.seq ORDER BY i.seq, i.index`);
  };
  /** A record in the middle of the chain with an upstream answer (status 200). */
  const middle = async () => {
    const all = await rows();
    const candidates = all.slice(1, -1).filter((r) => r.status === 200);
    expect(candidates.length).toBeGreaterThan(0);
    return { all, target: candidates[Math.floor(candidates.length / 2)]! };
  };

  beforeAll(async () => {
    up = await startCanary();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'acme', systemId: 'crm', baseUrl: `${up.url}/acme`, token: 'audit-acme-token' });
    await seedExclusive(hub, { tenantId: 'globex', systemId: 'crm', baseUrl: `${up.url}/globex`, token: 'audit-globex-token' });
    await hub.admin(`mutation { createTenant(input: { id: "initech", name: "Initech" }) { id } }`);
    globexKey = await createCallerWithGrant(hub, { id: 'globex-portal', tenantId: 'globex', grants: [{ tenantId: 'acme', systemId: 'crm', methods: ['GET'], pathPrefix: '/patients' }] });
    acmeKey = await createCallerWithGrant(hub, { id: 'acme-app', tenantId: 'acme', grants: [{ tenantId: 'acme' }, { tenantId: 'globex' }] });
    bystanderKey = await createCallerWithGrant(hub, { id: 'initech-bot', tenantId: 'initech', grants: [] });

    const call = (key: string, t: string, path: string) => hub.gql(INVOKE_QUERY, { t, s: 'crm', p: { path } }, { key });
    await call(globexKey, 'acme', '/patients/1'); // cross-tenant, answered
    await call(acmeKey, 'acme', '/patients/2');
    await call(globexKey, 'acme', '/admin/users'); // cross-tenant, refused (path prefix)
    await call(acmeKey, 'globex', '/orders/3'); // the other direction
    await call(globexKey, 'globex', '/patients/4'); // no grant on its own tenant's CRM
    await call(bystanderKey, 'acme', '/patients/5'); // no grant at all
    await call(globexKey, 'acme', '/patients/6');
    await call(acmeKey, 'acme', '/patients/7');
    await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/patients/8' } }); // admin, recorded under the admin caller
  });
  afterAll(async () => {
    await hub?.close();
    await up?.close();
  });

  describe('who sees the records of a cross-tenant call', () => {
    it('shows the calling caller its own records, answered and refused, of the other tenant', async () => {
      const own = await list({}, globexKey);
      const nodes = own.edges.map((e) => e.node);
      expect(own.totalCount).toBe(4);
      expect(nodes.every((n) => n.callerId === 'globex-portal')).toBe(true);
      expect(nodes.map((n) => `${n.tenantId} ${n.path} ${n.status ?? n.code}`)).toEqual([
        'acme /patients/6 200',
        'globex /patients/4 FORBIDDEN',
        'acme /admin/users FORBIDDEN',
        'acme /patients/1 200',
      ]);
    });

    it("never shows a caller another caller's records, whatever the filter", async () => {
      for (const vars of [{ callerId: 'acme-app' }, { tenantId: 'acme' }, { tenantId: 'acme', callerId: 'acme-app' }, { systemId: 'crm' }]) {
        const seen = await list(vars, globexKey);
        expect(seen.edges.every((e) => e.node.callerId === 'globex-portal'), JSON.stringify(vars)).toBe(true);
      }
      // acme's own app does not see the globex portal's calls into acme.
      const acmeView = await list({ tenantId: 'acme' }, acmeKey);
      expect(acmeView.edges.map((e) => e.node.callerId)).toEqual(acmeView.edges.map(() => 'acme-app'));
      expect(acmeView.totalCount).toBe(2);
      // A caller without any grant sees only its own refused attempt.
      const bystander = await list({ tenantId: 'acme' }, bystanderKey);
      expect(bystander.edges.map((e) => `${e.node.callerId} ${e.node.code}`)).toEqual(['initech-bot FORBIDDEN']);
    });

    it('shows an admin filtering by the called tenant every call into it, the cross-tenant ones included', async () => {
      const acme = await list({ tenantId: 'acme' });
      expect(acme.edges.every((e) => e.node.tenantId === 'acme')).toBe(true);
      expect(acme.edges.map((e) => `${e.node.callerId} ${e.node.path}`)).toEqual([
        'admin /patients/8',
        'acme-app /patients/7',
        'globex-portal /patients/6',
        'initech-bot /patients/5',
        'globex-portal /admin/users',
        'acme-app /patients/2',
        'globex-portal /patients/1',
      ]);
      const globex = await list({ tenantId: 'globex' });
      expect(globex.edges.map((e) => `${e.node.callerId} ${e.node.path}`)).toEqual(['globex-portal /patients/4', 'acme-app /orders/3']);
      const byCaller = await list({ callerId: 'globex-portal', tenantId: 'acme' });
      expect(byCaller.totalCount).toBe(3);
    });
  });

  describe('tamper evidence', () => {
    it('verifies the untouched chain (control)', async () => {
      const all = await rows();
      expect(all.length).toBe(9);
      expect(all.every((r) => r.index === 0)).toBe(true); // one invoke per request: a row each
      expect(await verify()).toEqual({ ok: true, checked: all.length, firstBrokenId: null });
    });

    // Every record here is alone in its row (one invoke per request): a record's own fields are
    // in the row's records text (its first and only entry), the rest are the row's columns.
    const field = (i: number) => `("records"::jsonb #>> '{0,${i}}')`;
    const setField = (i: number, expression: string) => `"records" = jsonb_set("records"::jsonb, '{0,${i}}', to_jsonb(${expression}))::text`;
    // [what is altered, SQL assignments on its InvocationGroup row]
    const alterations: [string, string][] = [
      ['status', setField(4, `${field(4)}::int + 1`)],
      ['path', setField(3, `${field(3)} || '/x'`)],
      ['createdAt', setField(1, `to_char(${field(1)}::timestamptz AT TIME ZONE 'UTC' + interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`)],
      ['createdAt (the same instant, written another way)', setField(1, `replace(${field(1)}, 'Z', '+00:00')`)],
      ['method', setField(2, `'HEAD'::text`)],
      ['code', setField(5, `'FORBIDDEN'::text`)],
      ['durationMs', setField(6, `${field(6)}::float8 * 2`)],
      ['id (of the row)', `"id" = "id" || 'x'`],
      ['callerId', `"callerId" = 'acme-app'`],
      ['callerId (erased)', `"callerId" = NULL`],
      ['tenantId', `"tenantId" = 'globex'`],
      ['systemId', `"systemId" = 'erp'`],
      ['requestId', setField(7, `upper(${field(7)})`)],
      ['count', `"count" = "count" + 1`],
      ['records (a record added)', `"records" = ("records"::jsonb || ("records"::jsonb -> 0))::text, "count" = "count" + 1`],
      ['hash', `hash = reverse(hash)`],
      ['prevHash', `"prevHash" = reverse("prevHash")`],
    ];

    /** Puts the row back exactly as it was saved. */
    const restoreRow = (saved: unknown) =>
      hub.db.query(
        `UPDATE "InvocationGroup" g SET ("id", "callerId", "tenantId", "systemId", "count", "records", "prevHash", "hash") =
           (s."id", s."callerId", s."tenantId", s."systemId", s."count", s."records", s."prevHash", s."hash")
         FROM json_populate_record(NULL::"InvocationGroup", $1::json) s WHERE g."seq" = s."seq"`,
        [JSON.stringify(saved)],
      );
    const savedRow = async (id: string) => (await hub.db.query<{ row: unknown }>(`SELECT row_to_json(g) AS row FROM "InvocationGroup" g WHERE id = $1`, [id]))[0]!.row;

    it.each(alterations)('names the record whose %s was altered, and is whole again once it is put back', async (_what, alter) => {
      const { all, target } = await middle();
      const saved = await savedRow(target.id);
      await hub.db.query(`UPDATE "InvocationGroup" SET ${alter} WHERE id = $1`, [target.id]);
      try {
        expect(await verify()).toMatchObject({ ok: false, firstBrokenId: target.id });
      } finally {
        await restoreRow(saved);
      }
      expect(await verify()).toEqual({ ok: true, checked: all.length, firstBrokenId: null });
    });

    it('names the record after one deleted from the middle, and is whole again once it is restored', async () => {
      const { all, target } = await middle();
      const index = all.findIndex((r) => r.id === target.id);
      const saved = await savedRow(target.id);
      await hub.db.query(`DELETE FROM "InvocationGroup" WHERE id = $1`, [target.id]);
      try {
        expect(await verify()).toMatchObject({ ok: false, firstBrokenId: all[index + 1]!.id });
      } finally {
        await hub.db.query(`INSERT INTO "InvocationGroup" SELECT * FROM json_populate_record(NULL::"InvocationGroup", $1::json)`, [JSON.stringify(saved)]);
      }
      expect(await verify()).toEqual({ ok: true, checked: all.length, firstBrokenId: null });
    });

    it('refuses callers the verification (FORBIDDEN) and anonymous clients (401)', async () => {
      for (const key of [globexKey, acmeKey, bystanderKey]) {
        const res = await hub.gql(VERIFY, undefined, { key });
        expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        expect(res.body.data?.verifyInvocationChain ?? null).toBeNull();
        expect(JSON.stringify(res.body)).not.toMatch(/"checked"|"ok"/);
      }
      const anonymous = await hub.gql(VERIFY, undefined, { key: null });
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    });

    // Last: it leaves the chain broken on purpose.
    it('names a forged record inserted into the chain, also once real records were chained after it', async () => {
      const all = await rows();
      const last = all.at(-1)!;
      const forged = 'forged-0000-4000-8000-000000000001';
      await hub.db.query(
        `INSERT INTO "InvocationGroup" (id, "callerId", "tenantId", "systemId", count, records, "prevHash", hash)
         VALUES ($1, 'globex-portal', 'acme', 'crm', 1, $2, $3, $4)`,
        [forged, JSON.stringify([[forged, new Date().toISOString(), 'GET', '/patients/1', 200, null, 1.5, forged]]), last.hash, 'f'.repeat(64)],
      );
      expect(await verify()).toMatchObject({ ok: false, firstBrokenId: forged });
      // Real calls after the forgery are chained to it: the forged record is now in the middle.
      await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/patients/9' } }, { key: globexKey });
      await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/patients/10' } }, { key: acmeKey });
      const after = await rows();
      expect(after.at(-1)!.id).not.toBe(forged);
      expect(after.at(-3)!.id).toBe(forged);
      expect(await verify()).toMatchObject({ ok: false, checked: all.length, firstBrokenId: forged });
      // Removing the forgery again does not hide it: the record chained after it is broken now.
      await hub.db.query(`DELETE FROM "InvocationGroup" WHERE id = $1`, [forged]);
      expect(await verify()).toMatchObject({ ok: false, firstBrokenId: after.at(-2)!.id });
    });
  });
});

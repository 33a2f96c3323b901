// The hub's own PostgreSQL going away: SERVICE_UNAVAILABLE and /readyz 503 while it is gone,
// /healthz still 200, and recovery without a restart. (The embedded database lives in the hub's
// own process and cannot become unreachable, so this runs on PostgreSQL only.)
import { describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { adminQuery as admin, createTestDatabase } from './helpers/test-database.js';
import { startTestHub } from './helpers/test-hub.js';

const onPostgres = testDatabases().includes('postgres');


describe.runIf(onPostgres)('database outage on postgres', () => {
  it('answers SERVICE_UNAVAILABLE while the database refuses connections, and recovers', async () => {
    const db = await createTestDatabase('postgres');
    const hub = await startTestHub('postgres', { db });
    const name = new URL(db.url!).pathname.slice(1);
    try {
      expect((await hub.gql(`{ viewer { role } }`)).status).toBe(200);
      await admin(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid()`);

      const down = await hub.gql(`{ tenants { totalCount } }`);
      expect(down.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      // The admin key is known to the registry cache, so the request runs; the field needs the database.
      expect(down.status).toBe(200);
      // A key the process has not seen needs the database before execution: the whole request is 503.
      const unseen = await hub.gql(`{ viewer { role } }`, {}, { key: 'thub_' + 'x'.repeat(43) });
      expect(unseen.body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(unseen.status).toBe(503);
      expect(JSON.stringify(down.body)).not.toMatch(/ALLOW_CONNECTIONS|pg_|prisma|postgres/i);
      expect((await fetch(`${hub.url}/readyz`)).status).toBe(503);
      expect((await fetch(`${hub.url}/healthz`)).status).toBe(200);

      await admin(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        status = (await fetch(`${hub.url}/readyz`)).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
      const up = await hub.gql(`{ tenants { totalCount } }`);
      expect(up.body.errors).toBeUndefined();
    } finally {
      await admin(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`).catch(() => {});
      await hub.close();
      await db.drop();
    }
  });
});

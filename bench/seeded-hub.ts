// A hub on a database of its own (PGlite in a temporary directory, or a new PostgreSQL database),
// seeded with the small registry, and the load request of one of bench/documents.ts's documents:
// what bench/profile.ts and bench/ab.ts measure. Everything it creates is undone by the cleanups
// it pushes, run in reverse order.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startHubProcess, type HubStart, type HubUnderTest } from './hub.js';
import type { LoadRequest } from './load.js';
import { docBody } from './documents.js';
import { seedSmall } from './seed.js';

const POSTGRES_ADMIN_URL = process.env.HUB_BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export async function startSeededHub(o: {
  name: string;
  db: string;
  /** the document the load sends: one, ten-batch, ten-identical or ten-distinct */
  doc: string;
  upstreamUrl: string;
  cleanups: (() => Promise<unknown>)[];
  start?: Pick<HubStart, 'nodeArgs' | 'startFlags' | 'mainJs'>;
}): Promise<{ hub: HubUnderTest; request: LoadRequest }> {
  const adminKey = `bench-admin-${randomBytes(24).toString('hex')}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hub-bench-'));
  o.cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  let databaseUrl: string | undefined;
  if (o.db === 'postgres') {
    const name = `hub_bench_${randomBytes(4).toString('hex')}`;
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await c.connect();
      await c.query(sql).finally(() => c.end());
    };
    await admin(`CREATE DATABASE "${name}"`);
    o.cleanups.push(() => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    const u = new URL(POSTGRES_ADMIN_URL);
    u.pathname = `/${name}`;
    databaseUrl = u.toString();
  }
  const hub = await startHubProcess({ ...o.start, name: o.name, adminKey, dataDir, databaseUrl, encryptionKey: randomBytes(32).toString('base64') });
  o.cleanups.push(() => hub.stop());
  const seeded = await seedSmall(hub.url, adminKey, o.upstreamUrl);
  const request: LoadRequest = {
    url: `${hub.url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${seeded.callerKey}` },
    body: docBody(o.doc),
    failIfBodyContains: '"errors"',
  };
  return { hub, request };
}

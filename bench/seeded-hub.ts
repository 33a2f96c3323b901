// A hub on a database of its own (PGlite in a temporary directory, or a new PostgreSQL database),
// seeded with the small registry, and the load request of one of bench/documents.ts's documents:
// what bench/profile.ts and bench/ab.ts measure. Everything it creates is undone by the cleanups
// it pushes, run in reverse order.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { postgresDatabase } from './bench-database.js';
import { hubRequest, startHubProcess, type HubStart, type HubUnderTest } from './hub.js';
import type { LoadRequest } from './load.js';
import { docBody } from './documents.js';
import { seedSmall } from './seed.js';

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
  const databaseUrl = o.db === 'postgres' ? await postgresDatabase(`hub_bench_${randomBytes(4).toString('hex')}`, o.cleanups) : undefined;
  const hub = await startHubProcess({ ...o.start, name: o.name, adminKey, dataDir, databaseUrl, encryptionKey: randomBytes(32).toString('base64') });
  o.cleanups.push(() => hub.stop());
  const seeded = await seedSmall(hub.url, adminKey, o.upstreamUrl);
  return { hub, request: hubRequest(hub, seeded.callerKey, [docBody(o.doc)]) };
}

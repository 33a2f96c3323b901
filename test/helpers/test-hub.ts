// A real hub on 127.0.0.1:0 over a fresh database, and a GraphQL client that talks to it over a socket.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config.js';
import { startHub, type Hub } from '../../src/hub.js';
import type { DbKind } from './databases.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

export interface GqlResponse<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[] };
}

export interface TestHub {
  url: string;
  adminKey: string;
  hub: Hub;
  db: TestDatabase;
  dataDir: string;
  /** every log line the hub wrote */
  logs: string[];
  /** GraphQL over HTTP; key: the API key to send (default admin; null: none) */
  gql<T = any>(query: string, variables?: Record<string, unknown>, opts?: { key?: string | null; headers?: Record<string, string> }): Promise<GqlResponse<T>>;
  /** Like gql, but throws on errors and returns data. */
  admin<T = any>(query: string, variables?: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

export interface TestHubOptions {
  env?: Record<string, string>;
  /** reuse a database (restart tests); default: a fresh clone of the migrated template */
  db?: TestDatabase;
  dataDir?: string;
  emptyDb?: boolean;
  /** the log sink throws on lines matching this (a logger that fails, e.g. on a value it cannot serialise) */
  failLogLine?: RegExp;
}

export async function startTestHub(kind: DbKind, opts: TestHubOptions = {}): Promise<TestHub> {
  const db = opts.db ?? (await createTestDatabase(kind, { empty: opts.emptyDb }));
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'hub-test-')));
  const adminKey = opts.env?.HUB_ADMIN_KEY ?? `test-admin-${randomBytes(24).toString('hex')}`;
  const config = parseConfig({
    HUB_HOST: '127.0.0.1',
    HUB_PORT: '0',
    HUB_DATA_DIR: dataDir,
    HUB_ADMIN_KEY: adminKey,
    HUB_LOG_LEVEL: 'debug',
    // Most suites script dozens of failures on one loopback origin; a breaker opening there would
    // turn their answers into CIRCUIT_OPEN. test/resilience.test.ts sets a real threshold.
    HUB_BREAKER_FAILURES: '1000000',
    ...(db.url ? { DATABASE_URL: db.url, HUB_ENCRYPTION_KEY: randomKeyFor(dataDir) } : {}),
    ...opts.env,
  });
  const logs: string[] = [];
  const hub = await startHub(config, {
    logSink: (line) => {
      if (opts.failLogLine?.test(line)) throw new Error('log sink failed');
      logs.push(line);
    },
    pglite: db.pglite,
  });
  const gql: TestHub['gql'] = async (query, variables, o = {}) => {
    const key = o.key === undefined ? adminKey : o.key;
    const res = await fetch(`${hub.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json',
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...o.headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as GqlResponse['body'] };
  };
  return {
    url: hub.url,
    adminKey,
    hub,
    db,
    dataDir,
    logs,
    gql,
    admin: async (query, variables) => {
      const res = await gql(query, variables);
      if (res.body.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(res.body.errors)}`);
      return res.body.data as any;
    },
    close: async () => {
      await hub.close();
      if (!opts.db) await db.drop();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// One stable key per data dir, so a restarted hub on the same PostgreSQL database can decrypt.
const keys = new Map<string, string>();
function randomKeyFor(dataDir: string): string {
  let key = keys.get(dataDir);
  if (!key) keys.set(dataDir, (key = randomBytes(32).toString('base64')));
  return key;
}

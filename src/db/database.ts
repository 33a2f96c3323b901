// The database behind the registry: the embedded PGlite (default) or a PostgreSQL server.
// Both speak the same SQL; the same migrations and the same Prisma client serve both.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.js';
import { DEFAULT_PGLITE_BUFFERS_MB } from '../config.js';
import type { Logger } from '../log.js';
import { applyMigrations } from './migrate.js';
import { readCommittedOrRetried } from './isolation.js';
import { pgliteRunner, postgresRunner, type SqlRunner } from './sql-runner.js';

export type Prisma = InstanceType<typeof PrismaClient>;

export interface Database {
  kind: 'pglite' | 'postgres';
  prisma: Prisma;
  /** the embedded database itself (kind 'pglite') */
  pglite?: PGlite;
  /** Applies committed migrations that have not run yet. */
  migrate(): Promise<string[]>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** Counts the SQL statements Prisma sends (tests use it to catch N+1 regressions). */
  onQuery(listener: (sql: string) => void): () => void;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres:// URL; undefined: embedded PGlite in dataDir */
  url: string | undefined;
  dataDir: string;
  poolSize: number;
  /** PGlite: PostgreSQL's shared_buffers in MB (default DEFAULT_PGLITE_BUFFERS_MB) */
  pgliteBuffersMb?: number;
  /** PostgreSQL: give up opening a connection after this long (default 5000 ms) */
  connectTimeoutMs?: number;
  log: Logger;
  /** Open an existing PGlite instance instead (tests use in-memory clones). */
  pglite?: PGlite;
}

type QueryEvent = { query: string };

function withQueryEvents(prisma: Prisma) {
  const listeners = new Set<(sql: string) => void>();
  (prisma as unknown as { $on(e: 'query', cb: (e: QueryEvent) => void): void }).$on('query', (e) => {
    for (const l of listeners) l(e.query);
  });
  return (listener: (sql: string) => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  return opts.url ? openPostgres(opts.url, opts) : openPglite(opts);
}

async function openPostgres(url: string, opts: DatabaseOptions): Promise<Database> {
  // A server that does not answer (not only one that refuses) must fail requests, not hang them.
  // Every transaction READ COMMITTED, whatever the database's default (src/db/isolation.ts).
  const adapter = readCommittedOrRetried(new PrismaPg({ connectionString: url, max: opts.poolSize, connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000 }));
  const prisma = new PrismaClient({
    adapter: adapter as never,
    log: [{ emit: 'event', level: 'query' }],
  }) as unknown as Prisma;
  return {
    kind: 'postgres',
    prisma,
    migrate: async () => {
      const runner = await postgresRunner(url);
      try {
        return await applyMigrations(runner, opts.log);
      } finally {
        await runner.close();
      }
    },
    ping: async () => {
      await prisma.$queryRawUnsafe('SELECT 1');
    },
    onQuery: withQueryEvents(prisma),
    close: () => prisma.$disconnect(),
  };
}

async function openPglite(opts: DatabaseOptions): Promise<Database> {
  // Imported here, not at the top: loading PGlite costs ~45 MB of memory that a hub on PostgreSQL
  // never needs.
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([import('@electric-sql/pglite'), import('pglite-prisma-adapter')]);
  let release = async () => {};
  let db = opts.pglite;
  if (!db) {
    await mkdir(opts.dataDir, { recursive: true });
    release = await lockDataDir(opts.dataDir);
    try {
      // PostgreSQL's buffer pool lives in PGlite's WASM memory, which never shrinks, and every
      // buffer once touched stays resident (its default 128 MB: ~100 MB of RSS). PGlite reads the
      // data files through Node's fs, so a page not in the pool comes from the kernel's page
      // cache, outside the process, for a system call: a small pool costs little (warm invokes
      // read nothing; the audit insert touches a few pages at the end of the table).
      const pgDir = path.join(opts.dataDir, 'pglite');
      const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${opts.pgliteBuffersMb ?? DEFAULT_PGLITE_BUFFERS_MB}MB`];
      if (!existsSync(path.join(pgDir, 'PG_VERSION'))) await initPgliteDir(pgDir, startParams);
      db = new PGlite(pgDir, { startParams });
      await db.waitReady;
    } catch (error) {
      await release();
      throw error;
    }
  }
  const pglite = db;
  const runner: SqlRunner = pgliteRunner(pglite);
  const prisma = new PrismaClient({
    adapter: new PrismaPGlite(pglite),
    log: [{ emit: 'event', level: 'query' }],
  }) as unknown as Prisma;
  return {
    kind: 'pglite',
    prisma,
    pglite,
    migrate: () => applyMigrations(runner, opts.log),
    ping: async () => {
      await runner.query('SELECT 1');
    },
    onQuery: withQueryEvents(prisma),
    close: async () => {
      await prisma.$disconnect();
      if (!opts.pglite) await pglite.close();
      await release();
    },
  };
}

// A first start runs initdb: in process, PGlite loads a second WASM PostgreSQL and initdb's own
// module, ~400 MB of WASM memory until a GC, and leaves ~100 MB of malloc heap and arenas that the
// process never gives back (bench/profile.ts: 436 -> 340 MB RSS under load). A short-lived child
// process runs it instead; this one only resumes the directory, as on any restart.
async function initPgliteDir(dir: string, startParams: string[]): Promise<void> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const code = `const { PGlite } = require(${JSON.stringify(entry)});
const db = new PGlite(${JSON.stringify(dir)}, { startParams: ${JSON.stringify(startParams)} });
db.waitReady.then(() => db.close()).catch((e) => { console.error(e?.stack ?? e); process.exit(1); });`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (status, signal) =>
      status === 0 ? resolve() : reject(new Error(`initialising the embedded database in ${dir} failed (${signal ?? `exit ${status}`}): ${stderr.trim()}`)),
    );
  });
}

// PGlite has no lock of its own: a second process opening the same directory corrupts it.
// A lock file holding our pid keeps a second hub out; a stale one (dead pid) is taken over.
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const file = path.join(dir, 'hub.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid && isAlive(pid)) {
        throw new Error(`${dir} is in use by another hub process (pid ${pid}); the embedded database allows one process`);
      }
      await rm(file, { force: true });
    }
  }
  throw new Error(`could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// The process around the API: health, readiness, GraphiQL, start-up on new and existing data,
// restarts that keep data and credentials, concurrent start-ups, graceful drain.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOTSTRAP_LOCK } from '../src/access/bootstrap-admin.js';
import { ConfigError, parseConfig } from '../src/config.js';
import { readMigrations } from '../src/db/migrate.js';
import { startHub, type Hub } from '../src/hub.js';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { eventually, startHubProcess } from './helpers/hub-process.js';
import { freePortPair } from './helpers/free-port.js';
import { parseStartScript, startCommand } from '../scripts/start-command.js';
import { createTestDatabase, repeatableReadByDefault } from './helpers/test-database.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

async function gql(hub: Hub, key: string, query: string, variables?: object) {
  const res = await fetch(`${hub.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: any; errors?: any[] };
}

describe('configuration', () => {
  it('names the variable that is wrong', () => {
    expect(() => parseConfig({ HUB_PORT: 'eighty' })).toThrow(/HUB_PORT/);
    expect(() => parseConfig({ HUB_ADMIN_KEY: 'short' })).toThrow(/HUB_ADMIN_KEY: must be at least 32/);
    expect(() => parseConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => parseConfig({ HUB_ENCRYPTION_KEY: 'dG9vIHNob3J0' })).toThrow(/HUB_ENCRYPTION_KEY: must be 32 bytes/);
    expect(() => parseConfig({ DATABASE_URL: 'postgres://h/db' })).toThrow(ConfigError);
    expect(() => parseConfig({ DATABASE_URL: 'postgres://h/db' })).toThrow(/HUB_ENCRYPTION_KEY: required when DATABASE_URL is set/);
    expect(() => parseConfig({ HUB_LOG_LEVEL: 'loud' })).toThrow(/HUB_LOG_LEVEL/);
  });

  it('has the documented defaults', () => {
    const c = parseConfig({});
    expect([c.host, c.port, c.databaseUrl, c.dataDir, c.logLevel, c.maxResponseBytes]).toEqual(['127.0.0.1', 4000, undefined, './.hub-data', 'info', 10485760]);
    expect(c.outboundDeny).toEqual(['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128']);
    expect([c.cache.staleMs, c.auditBufferMax]).toEqual([3_600_000, 100_000]);
    expect(c.resilience).toEqual({ retry: { maxRetries: 2, baseDelayMs: 100, maxDelayMs: 2000 }, breaker: { failureThreshold: 5, openMs: 30_000 }, maxConcurrentPerDeployment: 1024 });
    expect([c.drainDelayMs, c.idempotencyTtlMs]).toEqual([0, 86_400_000]);
    expect(() => parseConfig({ HUB_AUDIT_BUFFER_MAX: '0' })).toThrow(/HUB_AUDIT_BUFFER_MAX/);
    expect([c.fastPath, c.heapGrowthPercent, c.pgliteBuffersMb]).toEqual([true, 50, 8]);
    expect(parseConfig({ HUB_PGLITE_BUFFERS_MB: '64' }).pgliteBuffersMb).toBe(64);
    expect(() => parseConfig({ HUB_PGLITE_BUFFERS_MB: '0' })).toThrow(/HUB_PGLITE_BUFFERS_MB/);
    expect(parseConfig({ HUB_FAST_PATH: 'false', HUB_HEAP_GROWTH_PERCENT: '0' })).toMatchObject({ fastPath: false, heapGrowthPercent: 0 });
    expect(() => parseConfig({ HUB_FAST_PATH: 'sometimes' })).toThrow(/HUB_FAST_PATH/);
    expect(() => parseConfig({ HUB_HEAP_GROWTH_PERCENT: '-5' })).toThrow(/HUB_HEAP_GROWTH_PERCENT/);
  });
});

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let compiling: Promise<unknown> | undefined;
/** src/ compiled to dist/ once for this file, as `npm start` does first */
const compiled = () => (compiling ??= promisify(execFile)(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT }));

describe("npm start's command line (scripts/start-command.ts reads it for the cluster manager and the benchmark)", () => {
  it('is read from package.json: the environment and the node flags', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    expect(parseStartScript(pkg.scripts.start, {})).toEqual({ env: { MALLOC_ARENA_MAX: '2' }, nodeArgs: ['--max-semi-space-size=16'] });
  });

  it('reads assignments as the shell applies them', () => {
    const script = 'tsc && A=${A:-2} B=3 node --x=1 --y dist/main.js';
    expect(parseStartScript(script, {}).env).toEqual({ A: '2', B: '3' });
    expect(parseStartScript(script, { A: '7', B: '9' }).env).toEqual({ A: '7', B: '3' }); // the caller's value only where the script defers to it
    expect(parseStartScript(script, { A: '' }).env.A).toBe('2'); // :- also covers an empty value
    expect(parseStartScript(script, {}).nodeArgs).toEqual(['--x=1', '--y']);
  });

  it('refuses what it cannot read faithfully', () => {
    for (const script of ['A=$B node dist/main.js', 'A=${B:-2} node dist/main.js', 'A="2" node dist/main.js', 'node dist/main.js --port 1', 'node --x src/main.ts', 'node --require x dist/main.js']) {
      expect(() => parseStartScript(script, {}), script).toThrow(/package\.json scripts\.start/);
    }
  });
});

// `npm start` compiles src/ to dist/ and runs it with node and its two memory settings: that build,
// started so, must start and serve.
describe('the compiled build (npm start)', () => {
  const kind = testDatabases().includes('postgres') ? 'postgres' : 'pglite';
  it(`compiles, migrates a new ${kind} database and answers an invoke`, { timeout: 180_000 }, async () => {
    await compiled();
    const db = await createTestDatabase(kind, { empty: true });
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-build-'));
    const upstream = await startUpstream();
    const adminKey = `build-admin-${randomBytes(24).toString('hex')}`;
    const start = startCommand();
    const hub = await startHubProcess(
      {
        ...start.env,
        HUB_DATA_DIR: dataDir,
        HUB_ADMIN_KEY: adminKey,
        ...(db.url ? { DATABASE_URL: db.url, HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64') } : {}),
      },
      { args: [...start.nodeArgs, start.script], timeoutMs: 150_000 },
    );
    try {
      const admin = async (query: string) => {
        const res = await hub.gql(query, undefined, adminKey);
        expect(res.body.errors).toBeUndefined();
        return res.body.data;
      };
      await admin(`mutation { createTenant(input: { id: "acme", name: "Acme" }) { id } }`);
      await admin(`mutation { createSystem(input: { id: "crm", name: "CRM", mode: EXCLUSIVE }) { id } }`);
      await admin(`mutation { bindSystem(input: { tenantId: "acme", systemId: "crm", baseUrl: "${upstream.url}", credential: { kind: BEARER, token: "built-token" } }) { baseUrl } }`);
      const res = await hub.gql(INVOKE_QUERY, { t: 'acme', s: 'crm', p: { path: '/built' } }, adminKey);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.invoke.status).toBe(200);
      expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer built-token');
      // The fast path ran it on its compiled plan: the compiled build runs the same code as the tests.
      const metrics = await (await fetch(`${hub.url}/metrics`)).text();
      expect(metrics).toMatch(/^hub_fast_path_requests_total\{outcome="planned"\} 1$/m);
    } finally {
      await hub.stop();
      await upstream.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/** The pids of a process's children that run the hub (tsx also starts an esbuild service there). */
function hubsUnder(pid: number): number[] {
  let children: number[];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
  return children.filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('dist/main.js');
    } catch {
      return false; // gone meanwhile
    }
  });
}

// `npm run cluster` runs the compiled build as `npm start` runs it, restarts a process that dies and
// drains them all on SIGTERM. PostgreSQL only (the embedded database serves one process); Linux
// only (/proc shows each hub's command line and environment).
describe.runIf(testDatabases().includes('postgres') && process.platform === 'linux')('the cluster manager (npm run cluster)', () => {
  it('starts compiled hubs with npm start\'s settings, restarts one killed, and drains all on SIGTERM', { timeout: 240_000 }, async () => {
    await compiled();
    const db = await createTestDatabase('postgres', { empty: true });
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-cluster-manager-'));
    const base = await freePortPair(); // the manager listens on HUB_PORT and HUB_PORT+1
    const manager = spawn(process.execPath, ['--import', 'tsx', 'scripts/cluster.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HUB_HOST: '127.0.0.1',
        HUB_PORT: String(base),
        HUB_PROCESSES: '2',
        HUB_LOG_LEVEL: 'warn',
        DATABASE_URL: db.url!,
        HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        HUB_ADMIN_KEY: `cluster-admin-${randomBytes(24).toString('hex')}`,
        HUB_DATA_DIR: dataDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: the clean-up below reaches every hub, even orphaned
    });
    let output = '';
    manager.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    manager.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => manager.once('exit', (code) => resolve(code)));
    const exitedWithin = (ms: number) => Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), ms))]);
    const ready = (port: number) => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
    const bothReady = async () => (await ready(base)) && (await ready(base + 1));
    let hubs: number[] = [];
    try {
      const started = async () => hubsUnder(manager.pid!).length === 2 && (await bothReady());
      expect(await eventually(started, 90_000), `${output}\n${execFileSync('ps', ['-ef'], { encoding: 'utf8' })}`).toBe(true);
      expect(output).not.toMatch(/exited/); // none died on the way up
      hubs = hubsUnder(manager.pid!);
      for (const pid of hubs) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
        expect(argv.slice(1)).toEqual(['--max-semi-space-size=16', path.join(ROOT, 'dist', 'main.js')]);
        expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain('MALLOC_ARENA_MAX=2');
      }
      process.kill(hubs[0]!, 'SIGKILL');
      const restarted = async () => {
        const now = hubsUnder(manager.pid!);
        return now.length === 2 && !now.includes(hubs[0]!) && (await bothReady());
      };
      expect(await eventually(restarted, 30_000), output).toBe(true);
      expect(output).toMatch(/hub-\d exited \(SIGKILL\); restarting in 1 s/);
      hubs = hubsUnder(manager.pid!);
      manager.kill('SIGTERM');
      // 0 only when every hub exited 0 after its drain (the manager exits 1 otherwise)
      expect(await exitedWithin(30_000), output).toBe(0);
      expect(output).toMatch(/SIGTERM: draining 2 hub processes/);
      for (const pid of hubs) expect(() => process.kill(pid, 0)).toThrow(); // each exited
    } finally {
      try {
        process.kill(-manager.pid!, 'SIGKILL'); // the manager, its hubs, tsx's esbuild
      } catch {
        // the group is gone already
      }
      await exitedWithin(10_000);
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(testDatabases())('lifecycle on %s', (kind) => {
  let hub: TestHub;
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
    hub = await startTestHub(kind);
  });
  afterAll(async () => {
    await hub?.close();
    await upstream?.close();
  });

  it('answers /healthz and /readyz', async () => {
    const health = await fetch(`${hub.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${hub.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
  });

  it('serves GraphiQL to a browser without a CDN, with an example operation and the header hint', async () => {
    const res = await fetch(`${hub.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<title>tenant-hub</title>');
    expect(html).toContain('Authorization');
    expect(html).toContain('invoke(tenantId');
    expect(html).not.toMatch(/<script[^>]+src="https?:/);
    expect(html).not.toMatch(/<link[^>]+href="https?:\/\/[^"]+\.css/);
  });

  it('refuses a mutation over GET with 405', async () => {
    const res = await fetch(`${hub.url}/graphql?query=${encodeURIComponent('mutation { deleteTenant(id: "x") }')}`, {
      headers: { authorization: `Bearer ${hub.adminKey}`, accept: 'application/graphql-response+json' },
    });
    expect(res.status).toBe(405);
  });

  it('masks unexpected errors: a tampered credential gives INTERNAL_SERVER_ERROR and sends nothing', async () => {
    await seedExclusive(hub, { tenantId: 'tamper', systemId: 'tsys', baseUrl: upstream.url, token: 'tamper-token-xyz' });
    const [row] = await hub.db.query<{ c: string }>(`SELECT "credentialCiphertext" AS c FROM "Binding" WHERE "tenantId" = 'tamper'`);
    const parts = row!.c.split(':');
    const body = parts[3]!;
    parts[3] = (body[0] === 'A' ? 'B' : 'A') + body.slice(1); // one flipped byte of the sealed token
    await hub.db.query(`UPDATE "Binding" SET "credentialCiphertext" = $1 WHERE "tenantId" = 'tamper'`, [parts.join(':')]);
    const before = upstream.requests.length;
    const res = await hub.gql(INVOKE_QUERY, { t: 'tamper', s: 'tsys', p: { path: '/x' } });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(res.body)).not.toMatch(/stack|prisma|SELECT|tamper-token/i);
    expect(upstream.requests.length).toBe(before);
  });

  it('drains on close: an in-flight call finishes, its record is stored, new connections are refused', async () => {
    const db = await createTestDatabase(kind);
    const own = await startTestHub(kind, { db });
    const slow = await startUpstream();
    slow.route('/slow', (_, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"done":true}');
      }, 400);
    });
    await seedExclusive(own, { tenantId: 'd', systemId: 'slow', baseUrl: slow.url });
    const inflight = own.gql(INVOKE_QUERY, { t: 'd', s: 'slow', p: { path: '/slow' } });
    while (slow.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    const closing = own.close();
    const res = await inflight;
    expect(res.body.data?.invoke).toMatchObject({ status: 200, data: { done: true } });
    await closing;
    await expect(fetch(`${own.url}/healthz`)).rejects.toThrow();
    const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Invocation" WHERE path = '/slow'`);
    expect(rows[0]!.n).toBe(1);
    await db.drop();
    await slow.close();
  });

  it('two hubs starting together on an empty database both become ready; migrations run once', async () => {
    const db = await createTestDatabase(kind, { empty: true });
    if (kind === 'pglite') {
      // One embedded database belongs to one process: the start-up path is still exercised once.
      const only = await startTestHub(kind, { db });
      expect((await fetch(`${only.url}/readyz`)).status).toBe(200);
      await only.close();
    } else {
      const [a, b] = await Promise.all([startTestHub(kind, { db }), startTestHub(kind, { db })]);
      expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
      expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
      await Promise.all([a.close(), b.close()]);
    }
    const applied = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "_prisma_migrations"`);
    expect(applied[0]!.n).toBe((await readMigrations()).length);
    await db.drop();
  });
});

describe.each(testDatabases())('restart on %s', (kind) => {
  it('keeps the registry, API keys and encrypted credentials across a restart', { timeout: 120_000 }, async () => {
    const upstream = await startUpstream();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-restart-'));
    const db = kind === 'postgres' ? await createTestDatabase(kind) : undefined;
    const env = {
      HUB_HOST: '127.0.0.1',
      HUB_PORT: '0',
      HUB_DATA_DIR: dataDir,
      HUB_LOG_LEVEL: 'error',
      ...(db?.url ? { DATABASE_URL: db.url, HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64') } : {}),
    };
    const logs: string[] = [];
    const first = await startHub(parseConfig(env), { logSink: (l) => logs.push(l) });
    const adminKey = first.generatedAdminKey!;
    expect(adminKey).toMatch(/^thub_[A-Za-z0-9]{43}$/);
    const t = { token: 'restart-token-777' };
    for (const q of [
      `mutation { createTenant(input: { id: "r1", name: "R1" }) { id } }`,
      `mutation { createSystem(input: { id: "s1", name: "S1", mode: EXCLUSIVE }) { id } }`,
      `mutation { bindSystem(input: { tenantId: "r1", systemId: "s1", baseUrl: "${upstream.url}", credential: { kind: BEARER, token: "${t.token}" } }) { baseUrl } }`,
    ]) {
      expect((await gql(first, adminKey, q)).errors).toBeUndefined();
    }
    const created = await gql(first, adminKey, `mutation { createCaller(input: { id: "c1", name: "C1" }) { apiKey } }`);
    const callerKey = created.data.createCaller.apiKey as string;
    await gql(first, adminKey, `mutation { grant(input: { callerId: "c1", tenantId: "r1" }) { id } }`);
    await first.close();
    if (kind === 'pglite') expect((await stat(path.join(dataDir, 'encryption.key'))).mode & 0o777).toBe(0o600);

    const second = await startHub(parseConfig(env), { logSink: (l) => logs.push(l) });
    expect(second.generatedAdminKey).toBeNull(); // the first key is still the admin's
    const res = await gql(second, callerKey, INVOKE_QUERY, { t: 'r1', s: 's1', p: { path: '/after-restart' } });
    expect(res.errors).toBeUndefined();
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${t.token}`);
    expect((await gql(second, adminKey, `{ viewer { role } }`)).data.viewer.role).toBe('ADMIN');
    await second.close();
    expect(logs.join('\n')).not.toContain(t.token);
    await db?.drop();
    await upstream.close();
    await rm(dataDir, { recursive: true, force: true });
  });
});

// Under REPEATABLE READ a transaction's snapshot is taken by its first query: the one that waits
// for the bootstrap lock. The admin key generated meanwhile by the process holding the lock would be
// invisible to the waiter, which would generate a second one (or fail to start).
describe.runIf(testDatabases().includes('postgres'))('first start on PostgreSQL', () => {
  it("two hubs starting together generate one admin key, whatever the database's default isolation", { timeout: 120_000 }, async () => {
    const db = await createTestDatabase('postgres');
    await repeatableReadByDefault(db);
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-bootstrap-'));
    const env = { HUB_HOST: '127.0.0.1', HUB_PORT: '0', HUB_DATA_DIR: dataDir, HUB_LOG_LEVEL: 'error' as const, DATABASE_URL: db.url!, HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
    // A third session holds the bootstrap lock until both hubs wait for it.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const hubs: Hub[] = [];
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
      const starting = [startHub(parseConfig(env)), startHub(parseConfig(env))];
      const waiters = async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${BOOTSTRAP_LOCK} AND NOT granted`))[0]!.n;
      while ((await waiters()) < 2) await new Promise((r) => setTimeout(r, 20));
      await holder.query('ROLLBACK');
      const started = await Promise.allSettled(starting);
      for (const r of started) if (r.status === 'fulfilled') hubs.push(r.value);
      expect(started.map((r) => (r.status === 'rejected' ? String(r.reason) : 'started'))).toEqual(['started', 'started']);

      expect(hubs.map((h) => h.generatedAdminKey === null).sort()).toEqual([false, true]);
      const keys = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "ApiKey"`);
      expect(keys[0]!.n).toBe(1);
      const adminKey = hubs.find((h) => h.generatedAdminKey)!.generatedAdminKey!;
      for (const h of hubs) expect((await gql(h, adminKey, `{ viewer { role } }`)).data.viewer.role).toBe('ADMIN');
    } finally {
      await holder.end();
      for (const h of hubs) await h.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.runIf(testDatabases().includes('postgres'))('a changed HUB_ADMIN_KEY on PostgreSQL', () => {
  it('the old key stops working on every hub process as soon as one starts with the new key', { timeout: 120_000 }, async () => {
    const db = await createTestDatabase('postgres');
    const [k1, k2] = [`admin-one-${randomBytes(16).toString('hex')}`, `admin-two-${randomBytes(16).toString('hex')}`];
    // A cache that keeps what it read for ten minutes: only the announcement can drop it.
    const env = { HUB_CACHE_TTL_MS: '600000', HUB_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
    const hubs: TestHub[] = [];
    try {
      const other = await startTestHub('postgres', { db, env: { ...env, HUB_ADMIN_KEY: k1 } });
      hubs.push(other);
      const role = async (key: string) => (await other.gql(`{ viewer { role } }`, undefined, { key })).body.data?.viewer?.role ?? 'refused';
      expect(await role(k1)).toBe('ADMIN');
      hubs.push(await startTestHub('postgres', { db, env: { ...env, HUB_ADMIN_KEY: k2 } }));
      expect(await eventually(async () => (await role(k1)) === 'refused', 5_000)).toBe(true);
      expect(await role(k2)).toBe('ADMIN');
    } finally {
      for (const h of hubs) await h.close();
      await db.drop();
    }
  });
});

describe('embedded database', () => {
  it('refuses a second hub on the same data directory; runs with the configured buffer pool', { timeout: 120_000 }, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-lock-'));
    const env = { HUB_HOST: '127.0.0.1', HUB_PORT: '0', HUB_DATA_DIR: dataDir, HUB_LOG_LEVEL: 'error' as const };
    const first = await startHub(parseConfig(env), { logSink: () => {} });
    await expect(startHub(parseConfig(env), { logSink: () => {} })).rejects.toThrow(/in use by another hub process/);
    // The embedded database runs with an 8 MB buffer pool (PostgreSQL's 128 MB default would stay
    // resident in PGlite's WASM memory); HUB_PGLITE_BUFFERS_MB sets it, on an existing directory too.
    expect(await first.db.prisma.$queryRawUnsafe('SHOW shared_buffers')).toEqual([{ shared_buffers: '8MB' }]);
    await first.close();
    const restarted = await startHub(parseConfig({ ...env, HUB_PGLITE_BUFFERS_MB: '4' }), { logSink: () => {} });
    expect(await restarted.db.prisma.$queryRawUnsafe('SHOW shared_buffers')).toEqual([{ shared_buffers: '4MB' }]);
    await restarted.close();
    await rm(dataDir, { recursive: true, force: true });
  });
});

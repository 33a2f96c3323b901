// npm run bench -- [--duration <s>] [--db pglite|postgres|both] [--skip-100k] [--soak <minutes>]
//                  [--warmup <s>: load on each hub before measuring, default 30]
//                  [--cpu-prof <dir>: CPU profiles of the hubs] [--no-write: print only]
//
// Measures the hub against the upstream called directly, in one run and interleaved (direct, hub,
// direct, hub, ...), on the embedded PGlite and on PostgreSQL: one invoke; 10-invoke documents
// (distinct paths, identical paths, a batch-capable system); a cold registry cache; a registry of
// 100,000 tenants x 5 systems; a 20 ms upstream; one invoke at a fixed 1,000 req/s. Then paired
// rounds of the scenarios that targets compare with each other (one invoke, the batch document,
// the 100,000-tenant registry). Prints one table per database and writes it, with date and
// machine, to bench/RESULTS.md (and the README's marked section).
//
// Placement: the hubs run pinned to CPU 0 (taskset); this process (autocannon) pins itself, and the
// upstream runs, on CPU 1. Only loopback addresses are used. Everything started here is stopped on
// success, on error, on SIGINT/SIGTERM, and by a watchdog if the run overstays its time.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HUB_CPU, hubRequest, startHubProcess, type HubUnderTest } from './hub.js';
import { postgresDatabase } from './bench-database.js';
import { runLoad, type LoadRequest } from './load.js';
import { cpuMsOf, rssOf, killAllNow, pinSelf, script, startNode, stopAll, waitForLine } from './processes.js';
import { startCommand } from '../scripts/start-command.js';
import { pairedRunSeconds, render, table, writeReadme, writeResults, type DbResult, type Row, type RunInfo, type ScenarioKey, type Soak } from './report.js';
import {
  BATCH_SYSTEM,
  issueLargeCallerKey,
  LARGE_SYSTEMS,
  largeSystemId,
  largeTenantId,
  PLAIN_SYSTEM,
  seedLargePglite,
  seedLargePostgres,
  seedSmall,
  SMALL_TENANTS,
  tokenOf,
} from './seed.js';
import { ONE_DOC, oneBody, tenDoc } from './documents.js';

const CONNECTIONS = 32;
const LOAD_CPU = 1;
const FIXED_RATE = 1000;
/** the scenarios measured again in paired rounds, in this order (one invoke next to each of the others), and how many rounds */
const PAIRED: ScenarioKey[] = ['ten-batch', 'one', 'one-100k'];
// Five: on these machines one 5-s round can swing by 10 points or more (bench/RESULTS.md, 08:11).
const PAIRED_ROUNDS = 5;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  durationS: number;
  dbs: ('pglite' | 'postgres')[];
  skip100k: boolean;
  soakMinutes: number;
  cpuProfDir: string | null;
  write: boolean;
  /** seconds of one-invoke load on each hub before anything is measured (JIT, caches, pools) */
  warmupS: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { durationS: 10, dbs: ['pglite', 'postgres'], skip100k: false, soakMinutes: 0, cpuProfDir: null, write: true, warmupS: 30 };
  const value = (i: number) => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--duration') o.durationS = positive(a, value(i++));
    else if (a === '--soak') o.soakMinutes = positive(a, value(i++));
    else if (a === '--warmup') o.warmupS = positive(a, value(i++));
    else if (a === '--skip-100k') o.skip100k = true;
    else if (a === '--no-write') o.write = false;
    else if (a === '--cpu-prof') o.cpuProfDir = path.resolve(value(i++));
    else if (a === '--db') {
      const v = value(i++);
      if (v === 'both') o.dbs = ['pglite', 'postgres'];
      else if (v === 'pglite' || v === 'postgres') o.dbs = [v];
      else throw new Error('--db must be pglite, postgres or both');
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('npm run bench -- [--duration <s>] [--db pglite|postgres|both] [--skip-100k] [--soak <minutes>] [--warmup <s>] [--cpu-prof <dir>] [--no-write]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  return o;
}

/** e.g. `MALLOC_ARENA_MAX=2 node --max-semi-space-size=16 dist/main.js`, with the values in force */
function hubStartText(): string {
  const start = startCommand();
  return [...Object.entries(start.env).map(([k, v]) => `${k}=${v}`), 'node', ...start.nodeArgs, 'dist/main.js'].join(' ');
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Clean-up: everything started registers how to undo it; undone in reverse order.

const cleanups: (() => Promise<unknown>)[] = [];

/** Undoes what was registered after the first `mark` entries. */
async function unwindTo(mark: number): Promise<void> {
  while (cleanups.length > mark) await cleanups.pop()!().catch((e: unknown) => log(`clean-up: ${(e as Error).message}`));
}

let cleaning: Promise<void> | undefined;
/** Everything: the registered clean-ups and every child process still running. */
function cleanup(): Promise<void> {
  cleaning ??= unwindTo(0).then(stopAll);
  return cleaning;
}

function log(line: string) {
  process.stderr.write(`[bench] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Databases

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `hub-bench-${label}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Upstream

interface Upstream {
  url: string;
  pid: number;
  count(): Promise<number>;
  reset(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const child = startNode('upstream', script('bench', 'upstream.ts'), { cpu: LOAD_CPU });
  const m = await waitForLine(child, /READY (\d+)/, 30_000);
  const url = `http://127.0.0.1:${m[1]}`;
  return {
    url,
    pid: child.pid,
    count: async () => ((await (await fetch(`${url}/__count`)).json()) as { count: number }).count,
    reset: async () => void (await fetch(`${url}/__reset`, { method: 'POST' })).arrayBuffer(),
  };
}

/** The issue's reference: plain graphql-yoga + fetch, pinned like the hub (bench/plain-yoga.ts). */
async function startPlainYoga(upstream: Upstream): Promise<HubUnderTest> {
  const child = startNode('plain yoga', script('bench', 'plain-yoga.ts'), {
    cpu: HUB_CPU,
    env: { NODE_ENV: 'production', BENCH_UPSTREAM_URL: upstream.url, BENCH_TOKEN: tokenOf(SMALL_TENANTS[0]!, PLAIN_SYSTEM) },
  });
  const m = await waitForLine(child, /READY (\d+)/, 60_000);
  return {
    name: 'plain yoga',
    url: `http://127.0.0.1:${m[1]}`,
    adminKey: '',
    pid: child.pid,
    counters: async () => ({ dbQueries: null, upstreamRequests: null, outcomes: {} }),
    memory: async () => null,
    rss: async () => rssOf(child.pid),
    cpuMs: () => cpuMsOf(child.pid),
    stop: () => child.stop(),
  };
}

function plainYogaRequest(plain: HubUnderTest): LoadRequest {
  return {
    url: `${plain.url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: 'query One($p: String!) { call(path: $p) { status ok data } }', variables: { p: '/fast/1' } }),
    failIfBodyContains: '"errors"',
  };
}

// ---------------------------------------------------------------------------------------------
// One measured scenario

interface Scenario {
  key: ScenarioKey;
  label: string;
  /** null: the upstream itself */
  hub: HubUnderTest | null;
  request: LoadRequest;
  /** invoke fields in the document (checked on a single request first) */
  fields?: number;
  overallRate?: number;
  /** default CONNECTIONS */
  connections?: number;
}

async function sleep(ms: number) {
  await new Promise((r) => setTimeout(r, ms));
}

/** Sends the request once, alone: it must succeed; returns the upstream calls it caused. */
async function preflight(s: Scenario, upstream: Upstream): Promise<number> {
  await upstream.reset();
  const r = s.request;
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body ?? r.bodies?.[0], signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${s.label}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  if (s.fields !== undefined) {
    const body = JSON.parse(text) as { data?: Record<string, { status: number } | null>; errors?: unknown };
    const results = Object.values(body.data ?? {});
    if (body.errors || results.length !== s.fields || results.some((x) => x?.status !== 200)) {
      throw new Error(`${s.label}: unexpected answer: ${text.slice(0, 500)}`);
    }
  }
  await sleep(50);
  return upstream.count();
}

async function measure(s: Scenario, upstream: Upstream, opts: Options, previousDirect: Row | null): Promise<Row> {
  const upstreamSingle = await preflight(s, upstream);
  const load = { connections: s.connections ?? CONNECTIONS, overallRate: s.overallRate };
  await runLoad(s.request, { ...load, durationS: Math.min(3, Math.max(1, opts.durationS / 5)) }); // warm-up
  await sleep(300);
  await upstream.reset();
  const before = s.hub ? await s.hub.counters() : null;
  const cpu = () => (s.hub ? s.hub.cpuMs() : cpuMsOf(upstream.pid));
  const cpuBefore = cpu();
  let rss: number | null = null;
  const sample = async () => {
    const v = s.hub ? await s.hub.rss() : null;
    if (v !== null) rss = Math.max(rss ?? 0, v);
  };
  const sampler = setInterval(() => void sample(), 1000);
  let result;
  try {
    result = await runLoad(s.request, { ...load, durationS: opts.durationS });
  } finally {
    clearInterval(sampler);
  }
  const cpuAfter = cpu();
  await sample();
  await sleep(300); // let the audit's batched writes of the last requests land before counting
  const calls = await upstream.count();
  const after = s.hub ? await s.hub.counters() : null;
  // What went wrong, in the hub's words: invoke outcomes other than ok during the run.
  const errors = Object.entries(after?.outcomes ?? {})
    .map(([code, n]) => [code, n - (before?.outcomes[code] ?? 0)] as const)
    .filter(([code, n]) => code !== 'ok' && n > 0);
  const dbPerRequest =
    before?.dbQueries != null && after?.dbQueries != null && result.ok > 0 ? (after.dbQueries - before.dbQueries) / result.ok : null;
  return {
    key: s.key,
    label: s.label,
    hub: s.hub !== null,
    rps: result.rps,
    p50: result.p50,
    p99: result.p99,
    ok: result.ok,
    failed: result.failed,
    failures: errors.map(([code, n]) => `${code} x${n}`).join(', '),
    upstreamPerRequest: result.ok > 0 ? calls / result.ok : Number.NaN,
    upstreamSingle: s.hub ? upstreamSingle : null,
    dbPerRequest,
    cpuMsPerRequest: cpuBefore !== null && cpuAfter !== null && result.ok > 0 ? (cpuAfter - cpuBefore) / result.ok : null,
    rss,
    direct: s.hub ? previousDirect : null,
  };
}

async function soak(hub: HubUnderTest, request: LoadRequest, minutes: number): Promise<Soak> {
  const samples: number[] = [];
  const take = async () => {
    const v = await hub.rss();
    if (v !== null) samples.push(v);
  };
  await take();
  const timer = setInterval(() => void take(), 10_000);
  try {
    const result = await runLoad(request, { connections: CONNECTIONS, durationS: minutes * 60 });
    await take();
    return { minutes, rps: result.rps, samples, memoryAtEnd: await hub.memory() };
  } finally {
    clearInterval(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// One database: the hubs, the registries, the interleaved sequence

/** Fills `out` as the runs complete, so that an interrupted run still has its figures. */
async function benchDatabase(kind: 'pglite' | 'postgres', upstream: Upstream, plain: HubUnderTest, opts: Options, out: DbResult): Promise<void> {
  const mark = cleanups.length;
  try {
    await benchDatabaseIn(kind, upstream, plain, opts, out);
  } finally {
    // This database's hubs stop (and its databases go) before the next one starts.
    await unwindTo(mark);
  }
}

async function benchDatabaseIn(kind: 'pglite' | 'postgres', upstream: Upstream, plain: HubUnderTest, opts: Options, out: DbResult): Promise<void> {
  const tag = kind === 'pglite' ? 'Embedded PGlite' : 'PostgreSQL';
  const adminKey = `bench-admin-${randomBytes(24).toString('hex')}`;
  const encryptionKey = randomBytes(32).toString('base64');
  const stopLater = (hub: HubUnderTest) => {
    cleanups.push(() => hub.stop());
    return hub;
  };
  const id = randomBytes(4).toString('hex');
  const pgUrl = kind === 'postgres' ? await postgresDatabase(`hub_bench_${id}`, cleanups) : undefined;
  const db = (dataDir: string, url: string | undefined) => ({ dataDir, databaseUrl: url, encryptionKey, adminKey });

  // The 100,000-tenant registry is written with SQL before its hub opens the database.
  let large: { dataDir: string; url: string | undefined } | null = null;
  if (!opts.skip100k) {
    const dataDir = await tempDir(`${kind}-100k`);
    const url = kind === 'postgres' ? await postgresDatabase(`hub_bench_${id}_100k`, cleanups) : undefined;
    const t = Date.now();
    log(`${tag}: seeding 100,000 tenants x ${LARGE_SYSTEMS} systems with SQL`);
    if (url) await seedLargePostgres(url, upstream.url);
    else await seedLargePglite(dataDir, upstream.url);
    log(`${tag}: seeded in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    large = { dataDir, url };
  }

  log(`${tag}: starting the hubs`);
  const cpuProf = opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : undefined;
  const warmDir = await tempDir(`${kind}-warm`);
  const warm = stopLater(await startHubProcess({ name: `hub (${kind})`, ...db(warmDir, pgUrl), nodeArgs: cpuProf }));
  const seeded = await seedSmall(warm.url, adminKey, upstream.url);
  // The cold hub: no registry cache. PGlite allows one process per data directory, so it gets its
  // own (seeded the same way); on PostgreSQL it shares the warm hub's database.
  const coldDir = kind === 'pglite' ? await tempDir(`${kind}-cold`) : warmDir;
  const cold = stopLater(await startHubProcess({ name: `cold hub (${kind})`, ...db(coldDir, pgUrl), env: { HUB_CACHE_ENTRIES: '0' } }));
  const coldKey = kind === 'pglite' ? (await seedSmall(cold.url, adminKey, upstream.url)).callerKey : seeded.callerKey;
  let big: { hub: HubUnderTest; key: string; allKey: string } | null = null;
  if (large) {
    const hub = stopLater(await startHubProcess({ name: `100k hub (${kind})`, ...db(large.dataDir, large.url) }));
    big = { hub, key: (await seedSmall(hub.url, adminKey, upstream.url)).callerKey, allKey: await issueLargeCallerKey(hub.url, adminKey) };
  }

  const t1 = SMALL_TENANTS[0]!;
  // A fresh hub is several times slower for its first seconds (V8 compiles its hot paths): warm
  // every hub up before anything is measured, so that the order of the runs does not matter.
  const warmUps: [HubUnderTest, string][] = [[warm, seeded.callerKey], [cold, coldKey], ...(big ? [[big.hub, big.key] as [HubUnderTest, string]] : [])];
  for (const [hub, key] of warmUps) {
    log(`${tag}: warming up ${hub.name} for ${opts.warmupS} s`);
    await runLoad(hubRequest(hub, key, [oneBody(t1, PLAIN_SYSTEM, '/fast/1')]), { connections: CONNECTIONS, durationS: opts.warmupS });
  }
  const direct = (key: ScenarioKey, label: string, p: string, overallRate?: number): Scenario => ({
    key,
    label,
    hub: null,
    request: { url: `${upstream.url}${p}`, method: 'GET', headers: { accept: 'application/json', authorization: `Bearer ${seeded.token}` } },
    overallRate,
  });
  const hubOne = (key: ScenarioKey, label: string, hub: HubUnderTest, callerKey: string, p: string, overallRate?: number): Scenario => ({
    key,
    label,
    hub,
    request: hubRequest(hub, callerKey, [oneBody(t1, PLAIN_SYSTEM, p)]),
    fields: 1,
    overallRate,
  });
  const hubTen = (key: ScenarioKey, label: string, systemId: string, pathOf: (i: number) => string): Scenario => ({
    key,
    label,
    hub: warm,
    request: hubRequest(warm, seeded.callerKey, [JSON.stringify({ query: tenDoc(systemId, pathOf) })]),
    fields: 10,
  });
  // 1,000 tenants spread over the registry x its 5 systems, requested in turn.
  const rotating = () => {
    const bodies: string[] = [];
    for (let i = 1; i <= 1000; i++) for (let j = 1; j <= LARGE_SYSTEMS; j++) bodies.push(oneBody(largeTenantId(i * 100), largeSystemId(j), '/fast/1'));
    return bodies;
  };

  const fast = () => direct('direct', 'upstream direct: GET /fast/1', '/fast/1');
  const sequence: Scenario[] = [
    fast(),
    hubOne('one', 'hub: one invoke', warm, seeded.callerKey, '/fast/1'),
    fast(),
    {
      key: 'plain-yoga',
      label: 'reference, no hub: plain graphql-yoga, resolver calls fetch',
      hub: plain,
      request: plainYogaRequest(plain),
      fields: 1,
    } satisfies Scenario,
    ...(big ? [fast(), hubOne('one-100k', 'hub: one invoke, 100k-tenant registry', big.hub, big.key, '/fast/1')] : []),
    fast(),
    hubTen('ten-distinct', 'hub: 10 invokes, distinct paths', PLAIN_SYSTEM, (i) => `/fast/${i}`),
    fast(),
    hubTen('ten-identical', 'hub: 10 identical invokes', PLAIN_SYSTEM, () => '/fast/1'),
    fast(),
    hubTen('ten-batch', 'hub: 10 invokes to a batch system', BATCH_SYSTEM, (i) => `/fast/${i}`),
    fast(),
    hubOne('one-cold', 'hub: one invoke, cold registry cache', cold, coldKey, '/fast/1'),
    ...(big
      ? [
          fast(),
          {
            key: 'rotate-100k',
            label: 'hub: one invoke, 100k registry, 1,000 tenants x 5 systems in turn, caller granted all 100k tenants',
            hub: big.hub,
            request: hubRequest(big.hub, big.allKey, rotating()),
            fields: 1,
          } satisfies Scenario,
        ]
      : []),
    direct('direct-slow', 'upstream direct: GET /slow/1 (20 ms)', '/slow/1'),
    hubOne('one-slow', 'hub: one invoke to /slow (20 ms)', warm, seeded.callerKey, '/slow/1'),
    hubTen('ten-slow', 'hub: 10 invokes, distinct /slow paths', PLAIN_SYSTEM, (i) => `/slow/${i}`),
    direct('direct-1000', `upstream direct at ${FIXED_RATE.toLocaleString('en-US')} req/s`, '/fast/1', FIXED_RATE),
    hubOne('one-1000', `hub: one invoke at ${FIXED_RATE.toLocaleString('en-US')} req/s`, warm, seeded.callerKey, '/fast/1', FIXED_RATE),
    // autocannon's rate limit sends each connection's share of a second in a burst, so the fixed
    // rate rows include queueing; one connection, one request at a time, shows the latency alone.
    { ...direct('direct-serial', 'upstream direct, 1 connection', '/fast/1'), connections: 1 },
    { ...hubOne('one-serial', 'hub: one invoke, 1 connection', warm, seeded.callerKey, '/fast/1'), connections: 1 },
  ];

  const rows = out.rows;
  let lastDirect: Row | null = null;
  for (const s of sequence) {
    const row = await measure(s, upstream, opts, lastDirect);
    if (!row.hub) lastDirect = row;
    rows.push(row);
    log(
      `${tag}: ${row.label}: ${Math.round(row.rps)} req/s, p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, ` +
        `${row.upstreamPerRequest.toFixed(2)} upstream/req${row.failed ? `, ${row.failed} FAILED` : ''}${row.failures ? ` (invoke errors: ${row.failures})` : ''}`,
    );
  }

  // The two targets that compare hub figures with each other (the batch document against one
  // invoke; the 100,000-tenant registry against the small one) get paired rounds: the scenarios
  // back to back, in alternating order, PAIRED_ROUNDS times. One run of each, minutes apart, also
  // measures how the machine's speed drifted in between; the rounds' median ratio does not.
  // (The 100k hub's registry cache holds the rotation's entries by now: its cache is full.)
  const paired = PAIRED.flatMap((key) => sequence.filter((s) => s.key === key));
  const pairedOpts = { ...opts, durationS: pairedRunSeconds(opts.durationS) };
  for (let round = 0; round < PAIRED_ROUNDS; round++) {
    const rows: Row[] = [];
    for (const s of round % 2 === 0 ? paired : [...paired].reverse()) rows.push(await measure(s, upstream, pairedOpts, null));
    out.pairedRounds.push(rows);
    log(`${tag}: paired round ${round + 1}: ${rows.map((r) => `${r.key} ${Math.round(r.rps)} req/s`).join(', ')}`);
  }

  if (opts.soakMinutes > 0) {
    log(`${tag}: soak, one invoke for ${opts.soakMinutes} min`);
    out.soak = await soak(warm, hubRequest(warm, seeded.callerKey, [oneBody(t1, PLAIN_SYSTEM, '/fast/1')]), opts.soakMinutes);
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const pinned = pinSelf(LOAD_CPU);
  if (!pinned) log('taskset not found: nothing is pinned; figures are not comparable with pinned runs');

  // Watchdog: seeding, start-ups and the runs have generous bounds; past them, stop everything.
  const runs = 23 + PAIRED.length * PAIRED_ROUNDS; // measured runs per database (see benchDatabaseIn)
  const budgetMs = opts.dbs.length * (15 * 60_000 + (3 * opts.warmupS + runs * (opts.durationS + 10)) * 1000 + opts.soakMinutes * 60_000) + 5 * 60_000;
  const watchdog = setTimeout(() => {
    log(`the run took longer than ${Math.round(budgetMs / 60_000)} min: stopping everything`);
    void cleanup().finally(() => process.exit(1));
  }, budgetMs);
  watchdog.unref();
  const info: RunInfo = {
    date: new Date(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    durationS: opts.durationS,
    connections: CONNECTIONS,
    pinned,
    hubStart: hubStartText(),
    loadBefore: os.loadavg(),
    loadAfter: [],
  };
  const results: DbResult[] = [];
  const report = (interruption?: string) => {
    info.loadAfter = os.loadavg();
    const measured = results.filter((db) => db.rows.length > 0);
    if (!measured.length) return;
    for (const db of measured) process.stdout.write(`\n${db.name}\n\n${table(db.rows)}\n`);
    const section = render(info, measured, interruption);
    process.stdout.write(`\n${section}`);
    if (opts.write) {
      const file = writeResults(section);
      const readme = !interruption && writeReadme(info, measured);
      process.stdout.write(`\nWritten to ${file}${readme ? ' and README.md' : ''}.\n`);
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      log(`${signal}: stopping everything`);
      void cleanup()
        .then(() => report(`interrupted by ${signal}: the figures measured until then`))
        .finally(() => process.exit(130));
    });
  }
  process.on('exit', killAllNow);

  const upstream = await startUpstream();
  try {
    const plain = await startPlainYoga(upstream);
    log(`warming up plain yoga for ${opts.warmupS} s`);
    await runLoad(plainYogaRequest(plain), { connections: CONNECTIONS, durationS: opts.warmupS });
    for (const kind of opts.dbs) {
      const out: DbResult = { name: kind === 'pglite' ? 'Embedded PGlite' : 'PostgreSQL (127.0.0.1:5432, not pinned)', rows: [], pairedRounds: [], soak: null };
      results.push(out);
      await benchDatabase(kind, upstream, plain, opts, out);
    }
  } finally {
    await cleanup();
  }
  report();
  clearTimeout(watchdog);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error)?.stack ?? error}\n`);
  await cleanup();
  process.exit(1);
});

// npx tsx bench/profile.ts [--db pglite|postgres] [--duration <s>] [--warmup <s>] [--out <dir>]
//                          [--target hub|plain] [--heap] [--node-arg <flag>]... [--no-start-flags]
//                          [--doc one|ten-batch|ten-identical|ten-distinct] [--no-prof]
//                          [--rate <req/s>: a fixed rate instead of as fast as the hub answers]
//
// One process under the one-invoke load, profiled: the hub (or the plain graphql-yoga reference)
// runs with --cpu-prof; after a warm-up it is loaded for --duration seconds while its CPU time and
// memory (RSS, V8 heap, external) are sampled; on stop its .cpuprofile is written to --out and
// summarised (bench/profile-summary.ts). --heap also writes a heap snapshot at the end of the load.
// Measure: CPU ms per answered request and profile proportions (req/s depends on the machine's load).
// --no-prof runs without the profiler (whose sampling slows the hub by half or more): CPU ms per
// request and req/s as the benchmark would see them, to compare two builds quickly.
// --no-start-flags starts the hub as plain `node dist/main.js`, without what `npm start` adds.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { HubUnderTest } from './hub.js';
import { runLoad } from './load.js';
import { cpuMsOf, pinSelf, rssOf, script, startNode, stopAll, waitForLine } from './processes.js';
import { summarise } from './profile-summary.js';
import { PLAIN_SYSTEM, SMALL_TENANTS, tokenOf } from './seed.js';
import { startSeededHub } from './seeded-hub.js';

function args() {
  const o = { db: 'pglite', durationS: 20, warmupS: 15, out: path.resolve('bench-profiles'), target: 'hub', heap: false, prof: true, connections: 32, nodeArgs: [] as string[], startFlags: true, doc: 'one', rate: undefined as number | undefined };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const v = () => a[++i]!;
    if (a[i] === '--db') o.db = v();
    else if (a[i] === '--duration') o.durationS = Number(v());
    else if (a[i] === '--warmup') o.warmupS = Number(v());
    else if (a[i] === '--out') o.out = path.resolve(v());
    else if (a[i] === '--target') o.target = v();
    else if (a[i] === '--connections') o.connections = Number(v());
    else if (a[i] === '--rate') o.rate = Number(v());
    else if (a[i] === '--heap') o.heap = true;
    else if (a[i] === '--no-prof') o.prof = false;
    else if (a[i] === '--doc') o.doc = v();
    else if (a[i] === '--node-arg') o.nodeArgs.push(v());
    else if (a[i] === '--no-start-flags') o.startFlags = false;
    else throw new Error(`unknown option ${a[i]}`);
  }
  return o;
}

/** The process's largest memory mappings by resident size (Linux), to tell V8's heap from the rest. */
function mappings(pid: number): string {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return '';
  }
  const groups = new Map<string, number>();
  // Single mappings too: a WebAssembly memory (PGlite's: 128 MB) is one mapping of which only the
  // touched pages are resident.
  const single: { name: string; sizeKb: number; rssKb: number }[] = [];
  let name = '';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || '[anonymous]';
    const size = /^Size:\s+(\d+) kB/.exec(line);
    if (size) single.push({ name, sizeKb: Number(size[1]), rssKb: 0 });
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      groups.set(name, (groups.get(name) ?? 0) + Number(rss[1]));
      single[single.length - 1]!.rssKb = Number(rss[1]);
    }
  }
  const mb = (kb: number) => (kb / 1024).toFixed(0).padStart(5);
  const top = [...groups].sort((a, b) => b[1] - a[1]).slice(0, 8);
  const largest = single.sort((a, b) => b.rssKb - a.rssKb).slice(0, 6);
  return (
    top.map(([n, kb]) => `  mapped ${mb(kb)} MB  ${n}`).join('\n') +
    '\n' +
    largest.map((m) => `  one mapping ${mb(m.rssKb)} MB resident of ${mb(m.sizeKb)} MB  ${m.name}`).join('\n') +
    '\n'
  );
}

async function main() {
  const o = args();
  pinSelf(1);
  await mkdir(o.out, { recursive: true });
  const profDir = await mkdtemp(path.join(o.out, `${o.target}-${o.db}-`));
  const nodeArgs = [...o.nodeArgs, ...(o.prof ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), ...(o.heap ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${profDir}`] : [])];
  const cleanups: (() => Promise<unknown>)[] = [];
  const up = startNode('upstream', script('bench', 'upstream.ts'), { cpu: 1 });
  const upUrl = `http://127.0.0.1:${(await waitForLine(up, /READY (\d+)/, 30_000))[1]}`;
  try {
    let target: { pid: number; url: string; memory?: HubUnderTest['memory']; stop(): Promise<void> };
    const heapTotal = async () => {
      const text = await fetch(`${target.url}/metrics`).then((r) => (r.ok ? r.text() : ''), () => '');
      const m = /^nodejs_heap_size_total_bytes\s+(\S+)$/m.exec(text);
      return m ? `, heap total ${(Number(m[1]) / 2 ** 20).toFixed(0)} MB` : '';
    };
    let request;
    if (o.target === 'plain') {
      const child = startNode('plain yoga', script('bench', 'plain-yoga.ts'), {
        cpu: 0,
        nodeArgs,
        env: { NODE_ENV: 'production', BENCH_UPSTREAM_URL: upUrl, BENCH_TOKEN: tokenOf(SMALL_TENANTS[0]!, PLAIN_SYSTEM) },
      });
      const url = `http://127.0.0.1:${(await waitForLine(child, /READY (\d+)/, 60_000))[1]}`;
      target = { pid: child.pid, url, stop: () => child.stop() };
      request = {
        url: `${url}/graphql`,
        method: 'POST' as const,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query: 'query One($p: String!) { call(path: $p) { status ok data } }', variables: { p: '/fast/1' } }),
        failIfBodyContains: '"errors"',
      };
    } else {
      const seeded = await startSeededHub({ name: 'hub', db: o.db, doc: o.doc, upstreamUrl: upUrl, cleanups, start: { nodeArgs, startFlags: o.startFlags } });
      target = seeded.hub;
      request = seeded.request;
    }
    process.stderr.write(`[profile] warming up ${o.warmupS} s\n`);
    await runLoad(request, { connections: o.connections, durationS: o.warmupS, overallRate: o.rate });
    const samples: string[] = [];
    const sample = async () => {
      const rss = rssOf(target.pid);
      const mem = target.memory ? await target.memory() : null;
      samples.push(`rss ${((rss ?? 0) / 2 ** 20).toFixed(0)} MB` + (mem ? `, heap used ${(mem.heapUsed / 2 ** 20).toFixed(0)} MB, external ${(mem.external / 2 ** 20).toFixed(0)} MB${await heapTotal()}` : ''));
    };
    await sample();
    const timer = setInterval(() => void sample(), 5000);
    const cpu0 = cpuMsOf(target.pid)!;
    const r = await runLoad(request, { connections: o.connections, durationS: o.durationS, overallRate: o.rate });
    const cpu1 = cpuMsOf(target.pid)!;
    clearInterval(timer);
    await sample();
    process.stdout.write(mappings(target.pid));
    if (o.heap) {
      process.kill(target.pid, 'SIGUSR2');
      await new Promise((res) => setTimeout(res, 15_000));
    }
    process.stdout.write(`${o.target} ${o.db} ${o.nodeArgs.join(' ')}${o.startFlags ? '' : ' (no start flags)'}: ${r.ok} ok, ${r.failed} failed, ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, CPU ${((cpu1 - cpu0) / r.ok).toFixed(3)} ms/req\n`);
    process.stdout.write(samples.map((s) => `  ${s}`).join('\n') + '\n');
    await target.stop();
    const prof = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'));
    for (const f of prof) {
      process.stdout.write(`\n${path.join(profDir, f)}\n`);
      process.stdout.write(summarise(path.join(profDir, f), 30, o.durationS));
    }
  } finally {
    await up.stop();
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await stopAll();
  }
}

main().catch(async (e: unknown) => {
  process.stderr.write(`profile failed: ${(e as Error)?.stack ?? e}\n`);
  await stopAll();
  process.exit(1);
});

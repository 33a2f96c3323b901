// npx tsx bench/ab.ts --b <tree> [--a <tree>] [--db postgres|pglite] [--doc one|ten-batch|ten-identical|ten-distinct]
//                     [--rounds 8] [--window 4] [--warmup 5]
//
// Two builds of the hub, compared on one machine at one time: both run side by side (each pinned
// to CPU 0 as in the benchmark, on its own database, with its own copy of the small registry), and
// the load goes to one, then the other, in short windows whose order alternates every round. A
// machine whose speed drifts by ±10-30% within minutes (bench/RESULTS.md) then shifts both builds
// alike, and the paired ratios tell a change of a few percent apart. --a defaults to this tree;
// each tree is compiled first and must share this tree's node_modules (e.g. a git worktree with a
// node_modules link). Both hubs start with this tree's `npm start` flags and environment.
import path from 'node:path';
import { runLoad } from './load.js';
import { compileTree, killAllNow, pinSelf, ROOT, script, startNode, stopAll, waitForLine } from './processes.js';
import { startSeededHub } from './seeded-hub.js';

function args() {
  const o = { a: ROOT, b: '', db: 'postgres', doc: 'ten-batch', rounds: 8, windowS: 4, warmupS: 5, connections: 32 };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const v = () => a[++i]!;
    if (a[i] === '--a') o.a = path.resolve(v());
    else if (a[i] === '--b') o.b = path.resolve(v());
    else if (a[i] === '--db') o.db = v();
    else if (a[i] === '--doc') o.doc = v();
    else if (a[i] === '--rounds') o.rounds = Number(v());
    else if (a[i] === '--window') o.windowS = Number(v());
    else if (a[i] === '--warmup') o.warmupS = Number(v());
    else if (a[i] === '--connections') o.connections = Number(v());
    else throw new Error(`unknown option ${a[i]}`);
  }
  if (!o.b) throw new Error('usage: bench/ab.ts --b <tree> [--a <tree>] ...');
  // Each build goes first in half of the rounds: the second of a round runs while the first
  // one's last audit writes still land on CPU 0.
  if (o.rounds % 2) throw new Error('--rounds must be even');
  return o;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length / 2;
  return Number.isInteger(m) ? (s[m - 1]! + s[m]!) / 2 : s[Math.floor(m)]!;
};

async function main() {
  const o = args();
  pinSelf(1);
  // neither side runs a stale build
  compileTree(o.a);
  compileTree(o.b);
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await stopAll();
  };
  // Interrupted: no hub left running pinned to CPU 0, no database or data directory left behind.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void cleanup().finally(() => process.exit(130)));
  process.on('exit', killAllNow);
  try {
    const up = startNode('upstream', script('bench', 'upstream.ts'), { cpu: 1 });
    const upUrl = `http://127.0.0.1:${(await waitForLine(up, /READY (\d+)/, 30_000))[1]}`;
    const start = async (name: string, tree: string) => {
      const { hub, request } = await startSeededHub({ name, db: o.db, doc: o.doc, upstreamUrl: upUrl, cleanups, start: { mainJs: path.join(tree, 'dist', 'main.js') } });
      return { name, hub, request, rps: [] as number[], cpu: [] as number[] };
    };
    const sides = [await start('A', o.a), await start('B', o.b)];
    for (const s of sides) {
      const warm = await runLoad(s.request, { connections: o.connections, durationS: o.warmupS });
      if (warm.failed || !warm.ok) throw new Error(`${s.name}: warm-up answered ${warm.ok} requests, ${warm.failed} failed`);
    }
    const measure = async (s: (typeof sides)[number]) => {
      const cpu0 = s.hub.cpuMs()!;
      const r = await runLoad(s.request, { connections: o.connections, durationS: o.windowS });
      if (r.failed || !r.ok) throw new Error(`${s.name}: ${r.ok} answered, ${r.failed} failed`);
      s.rps.push(r.rps);
      s.cpu.push((s.hub.cpuMs()! - cpu0) / r.ok);
    };
    process.stdout.write(`A ${o.a}\nB ${o.b}\n${o.db}, ${o.doc}, ${o.rounds} rounds of ${o.windowS} s windows\n`);
    for (let round = 0; round < o.rounds; round++) {
      for (const s of round % 2 ? [...sides].reverse() : sides) await measure(s);
      const [a, b] = sides as [(typeof sides)[number], (typeof sides)[number]];
      process.stdout.write(
        `round ${round + 1}: A ${Math.round(a.rps.at(-1)!)} req/s ${a.cpu.at(-1)!.toFixed(3)} ms/req | B ${Math.round(b.rps.at(-1)!)} req/s ${b.cpu.at(-1)!.toFixed(3)} ms/req | B/A req/s ${(b.rps.at(-1)! / a.rps.at(-1)!).toFixed(3)}\n`,
      );
    }
    const [a, b] = sides as [(typeof sides)[number], (typeof sides)[number]];
    const pairs = a.rps.map((x, i) => b.rps[i]! / x);
    const cpuPairs = a.cpu.map((x, i) => b.cpu[i]! / x);
    process.stdout.write(
      `median: A ${Math.round(median(a.rps))} req/s ${median(a.cpu).toFixed(3)} ms/req, B ${Math.round(median(b.rps))} req/s ${median(b.cpu).toFixed(3)} ms/req\n` +
        `B/A per round: req/s median ${median(pairs).toFixed(3)} (${Math.min(...pairs).toFixed(3)}-${Math.max(...pairs).toFixed(3)}), CPU per request median ${median(cpuPairs).toFixed(3)} (${Math.min(...cpuPairs).toFixed(3)}-${Math.max(...cpuPairs).toFixed(3)})\n`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String((error as Error)?.stack ?? error)}\n`);
  process.exitCode = 1;
});

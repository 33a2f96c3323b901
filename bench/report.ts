// The benchmark's output: one table per database, the issue's targets checked against it, and the
// same text written to bench/RESULTS.md (newest first) and to the README's marked section.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { script } from './processes.js';

export type ScenarioKey =
  | 'direct'
  | 'one'
  | 'plain-yoga'
  | 'ten-distinct'
  | 'ten-identical'
  | 'ten-batch'
  | 'one-cold'
  | 'one-100k'
  | 'rotate-100k'
  | 'direct-slow'
  | 'one-slow'
  | 'ten-slow'
  | 'direct-1000'
  | 'one-1000'
  | 'direct-serial'
  | 'one-serial';

export interface Row {
  key: ScenarioKey;
  label: string;
  hub: boolean;
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  /** the hub's invoke errors during the run, by code ("CIRCUIT_OPEN x12, ...") */
  failures?: string;
  /** upstream requests per answered request, under load */
  upstreamPerRequest: number;
  /** upstream requests caused by one request sent alone (exact) */
  upstreamSingle: number | null;
  /** null: the hub has no /metrics yet */
  dbPerRequest: number | null;
  /** CPU time of the server (the hub; the upstream for direct rows) per answered request, ms */
  cpuMsPerRequest: number | null;
  /** peak during the run, bytes */
  rss: number | null;
  /** the direct run this row is compared with (the closest one before it) */
  direct: Row | null;
}

export interface Soak {
  minutes: number;
  rps: number;
  /** bytes, sampled every 10 s */
  samples: number[];
  /** the hub's V8 heap in use and external memory at the end, bytes */
  memoryAtEnd: { heapUsed: number; external: number } | null;
}

export interface DbResult {
  name: string;
  rows: Row[];
  /** the scenarios the hub-to-hub targets compare, measured again back to back: one list per round */
  pairedRounds: Row[][];
  soak: Soak | null;
}

export interface RunInfo {
  date: Date;
  command: string;
  durationS: number;
  connections: number;
  pinned: boolean;
  /** how the hubs were started: npm start's assignments and node flags */
  hubStart: string;
  loadBefore: number[];
  loadAfter: number[];
}

const MB = 1024 * 1024;
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
const pct = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(n < 0.1 ? 1 : 0)}%` : '-');
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)}x` : '-');
const mb = (b: number | null) => (b === null ? '-' : `${Math.round(b / MB)}`);

export function machine(): string {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux: os.cpus() it is
  }
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export function table(rows: Row[]): string {
  const head =
    '| scenario | req/s | req/s vs direct | p50 ms | p50 vs direct | p99 ms | p99 vs direct | upstream calls/req | DB queries/req | server CPU ms/req | hub RSS MB |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map((r) => {
    const d = r.direct;
    const failed = r.failed > 0 ? ` (${f0(r.failed)} failed${r.failures ? `: ${r.failures}` : ''})` : '';
    const db = r.hub && r.key !== 'plain-yoga' ? (r.dbPerRequest === null ? 'n/a' : f2(r.dbPerRequest)) : '-';
    return `| ${r.label}${failed} | ${f0(r.rps)} | ${r.hub && d ? pct(r.rps / d.rps) : ''} | ${f2(r.p50)} | ${r.hub && d ? times(r.p50 / d.p50) : ''} | ${f2(r.p99)} | ${
      r.hub && d ? times(r.p99 / d.p99) : ''
    } | ${f2(r.upstreamPerRequest)} | ${db} | ${r.cpuMsPerRequest === null ? '-' : f3(r.cpuMsPerRequest)} | ${r.hub ? mb(r.rss) : '-'} |`;
  });
  return [head, ...lines].join('\n');
}

interface Check {
  target: string;
  measured: string;
  met: boolean | null;
}

function checks(db: DbResult): Check[] {
  const get = (k: ScenarioKey) => db.rows.find((r) => r.key === k);
  const out: Check[] = [];
  const one = get('one');
  if (one?.direct) {
    const share = one.rps / one.direct.rps;
    out.push({ target: 'one invoke >= 15% of direct req/s', measured: `${pct(share)} (${f0(one.rps)} vs ${f0(one.direct.rps)})`, met: share >= 0.15 });
  }
  const plain = get('plain-yoga');
  if (one?.direct && plain?.direct) {
    const x = one.rps / one.direct.rps / (plain.rps / plain.direct.rps);
    out.push({
      target: 'one invoke >= 2x plain graphql-yoga + fetch (measured in this run)',
      measured: `${times(x)}, each against its own direct run (${f0(one.rps)} vs ${f0(plain.rps)} req/s)`,
      met: x >= 2,
    });
  }
  const at = get('one-1000');
  if (at?.direct) {
    const added = at.p50 - at.direct.p50;
    const sustained = at.rps >= 950 ? '' : `; the hub answered only ${f0(at.rps)} req/s, so this is mostly queueing`;
    out.push({ target: 'p50 added at 1,000 req/s <= 1 ms', measured: `${added.toFixed(2)} ms (${f2(at.p50)} vs ${f2(at.direct.p50)})${sustained}`, met: added <= 1 });
  }
  const serial = get('one-serial');
  if (serial?.direct) {
    const added = serial.p50 - serial.direct.p50;
    out.push({ target: 'p50 added with 1 connection (no queueing)', measured: `${added.toFixed(2)} ms (${f2(serial.p50)} vs ${f2(serial.direct.p50)})`, met: null });
  }
  const same = get('ten-identical');
  if (same) {
    out.push({
      target: '10 identical invokes -> 1 upstream call',
      measured: `${same.upstreamSingle ?? '?'} for one request alone, ${f2(same.upstreamPerRequest)} per request under load`,
      met: same.upstreamSingle === 1,
    });
  }
  const batch = get('ten-batch');
  if (batch) {
    out.push({
      target: '10 invokes to a batch system -> 1 upstream call',
      measured: `${batch.upstreamSingle ?? '?'} for one request alone, ${f2(batch.upstreamPerRequest)} per request under load`,
      met: batch.upstreamSingle === 1,
    });
    const check = hubToHub(db, 'ten-batch', 0.5);
    if (check) out.push({ target: '10-invoke batch document >= 50% of one-invoke req/s', ...check });
  }
  const check100k = hubToHub(db, 'one-100k', 0.9);
  if (check100k) out.push({ target: '100,000 tenants: warm one-invoke req/s within 10% of the 10-tenant figure', ...check100k });
  if (one?.direct && one.cpuMsPerRequest !== null && one.direct.cpuMsPerRequest !== null) {
    out.push({
      target: 'CPU per request (less disturbed by other load than req/s)',
      measured: `one invoke: hub ${f3(one.cpuMsPerRequest)} ms, upstream alone ${f3(one.direct.cpuMsPerRequest)} ms (${times(one.cpuMsPerRequest / one.direct.cpuMsPerRequest)})`,
      met: null,
    });
  }
  // The rotation through 5,000 bindings of the 100,000-tenant registry fills the registry cache on
  // purpose: its memory is bounded by HUB_CACHE_ENTRIES, reported apart.
  const hubRss = db.rows.filter((r) => r.hub && r.key !== 'plain-yoga' && r.key !== 'rotate-100k' && r.rss !== null).map((r) => r.rss!);
  if (hubRss.length) {
    const max = Math.max(...hubRss);
    out.push({ target: 'hub RSS under load <= 200 MB', measured: `peak ${mb(max)} MB over the runs above but the rotation`, met: max <= 200 * MB });
  }
  const rotating = db.rows.find((r) => r.key === 'rotate-100k' && r.rss !== null);
  if (rotating) {
    out.push({
      target: 'memory with the registry cache filling (100,000-tenant rotation)',
      measured: `peak ${mb(rotating.rss!)} MB, bounded by HUB_CACHE_ENTRIES (default 50,000 entries), not by the registry's size`,
      met: null,
    });
  }
  if (db.soak && db.soak.samples.length > 1) {
    const s = db.soak.samples;
    const max = Math.max(...s);
    // Flat: after the first minute (JIT, caches, pools warm) RSS grows by less than 10%.
    const base = s[Math.min(6, s.length - 1)]!;
    const growth = s[s.length - 1]! / base - 1;
    out.push({
      target: `RSS <= 200 MB and flat over a ${db.soak.minutes}-minute soak`,
      measured: `start ${mb(s[0]!)} MB, max ${mb(max)} MB, end ${mb(s[s.length - 1]!)} MB (${(growth * 100).toFixed(1)}% after the first minute), ${f0(db.soak.rps)} req/s${
        db.soak.memoryAtEnd ? `; at the end V8 heap in use ${mb(db.soak.memoryAtEnd.heapUsed)} MB, external ${mb(db.soak.memoryAtEnd.external)} MB` : ''
      }`,
      met: max <= 200 * MB && growth < 0.1,
    });
  }
  return out;
}

/** how long each paired-round run lasts, for runs of durationS seconds */
export const pairedRunSeconds = (durationS: number) => Math.max(3, durationS / 2);

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * A target that compares a hub scenario with one invoke on the warm hub (req/s of `key` >= share
 * of one invoke's). The verdict is the median ratio of the paired rounds, where the two ran back
 * to back; the single runs are compared as the other targets are, each against the direct run
 * measured just before it, and shown too. Without paired rounds, those single runs decide.
 */
function hubToHub(db: DbResult, key: ScenarioKey, share: number): Omit<Check, 'target'> | null {
  const one = db.rows.find((r) => r.key === 'one');
  const other = db.rows.find((r) => r.key === key);
  if (!one?.direct || !other?.direct) return null;
  const raw = other.rps / one.rps;
  const normalised = other.rps / other.direct.rps / (one.rps / one.direct.rps);
  const single = `${pct(normalised)} each against its own direct run (${pct(raw)} raw: ${f0(other.rps)} vs ${f0(one.rps)})`;
  const rounds = db.pairedRounds
    .map((round) => [round.find((r) => r.key === 'one'), round.find((r) => r.key === key)] as const)
    .filter((pair): pair is readonly [Row, Row] => pair[0] !== undefined && pair[1] !== undefined && pair[0].rps > 0);
  if (!rounds.length) return { measured: single, met: normalised >= share };
  const ratios = rounds.map(([a, b]) => b.rps / a.rps);
  const cpu = rounds.filter(([a, b]) => a.cpuMsPerRequest && b.cpuMsPerRequest).map(([a, b]) => a.cpuMsPerRequest! / b.cpuMsPerRequest!);
  const m = median(ratios);
  return {
    measured:
      `${pct(m)}, median of ${rounds.length} paired rounds (${ratios.map(pct).join(', ')}` +
      `${cpu.length ? `; by CPU per request ${pct(median(cpu))}` : ''}); the single runs above: ${single}`,
    met: m >= share,
  };
}

/** The paired rounds: the scenarios again, back to back, for the targets that compare them. */
export function pairedTable(db: DbResult): string {
  const keys = [...new Set(db.pairedRounds.flatMap((round) => round.map((r) => r.key)))];
  const label = (k: ScenarioKey) => db.pairedRounds.flat().find((r) => r.key === k)!.label;
  const head = `| round | ${keys.map((k) => `${label(k)}: req/s | CPU ms/req`).join(' | ')} |\n|---|${keys.map(() => '---:|---:').join('|')}|`;
  const lines = db.pairedRounds.map((round, i) => {
    const cells = keys.map((k) => {
      const r = round.find((x) => x.key === k);
      return r ? `${f0(r.rps)}${r.failed > 0 ? ` (${f0(r.failed)} failed)` : ''} | ${r.cpuMsPerRequest === null ? '-' : f3(r.cpuMsPerRequest)}` : ' | ';
    });
    return `| ${i + 1} | ${cells.join(' | ')} |`;
  });
  return [head, ...lines].join('\n');
}

function checksText(db: DbResult): string {
  return checks(db)
    .map((c) => `- ${c.met === null ? 'info' : c.met ? 'met' : '**missed**'}: ${c.target}: ${c.measured}`)
    .join('\n');
}

/** @param interruption set when the run was stopped early: said under the heading */
export function render(info: RunInfo, dbs: DbResult[], interruption?: string): string {
  const when = info.date.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  const setup =
    `\`${info.command}\`: ${info.connections} connections, ${info.durationS} s per run after a warm-up, ` +
    (info.pinned ? 'hub pinned to CPU 0, load generator and upstream to CPU 1 (taskset)' : 'no taskset: nothing pinned') +
    `; hubs started as \`npm start\` starts them: \`${info.hubStart}\`` +
    `. Load average before/after: ${info.loadBefore.map((l) => l.toFixed(1)).join(' ')} / ${info.loadAfter.map((l) => l.toFixed(1)).join(' ')}.`;
  const parts = [`## ${when}${interruption ? ' (incomplete)' : ''}`, '', ...(interruption ? [`**Run ${interruption}.**`, ''] : []), `Machine: ${machine()}.`, '', setup];
  for (const db of dbs) {
    parts.push('', `### ${db.name}`, '', table(db.rows));
    if (db.pairedRounds.length) {
      parts.push('', `Paired rounds (each scenario for ${pairedRunSeconds(info.durationS)} s, back to back, the order reversed every other round):`, '', pairedTable(db));
    }
    parts.push('', 'Targets (issue 5):', '', checksText(db));
  }
  return parts.join('\n') + '\n';
}

const RESULTS = script('bench', 'RESULTS.md');
const MARKER = '<!-- newest run first; each run is added by `npm run bench` -->';
const PREAMBLE = `# Benchmark results

\`npm run bench\` (see \`bench/run.ts\` for the options) measures the hub against the upstream called
directly, in the same run and interleaved: each hub row is compared with the direct run just before
it. Columns: requests per second (answers that were 2xx and free of GraphQL errors), latency
percentiles measured per response, upstream HTTP requests per answered request (counted by the
upstream), SQL statements per request (the hub's \`hub_db_queries_total\`; the audit records written
in batches are included), CPU time used by the server per answered request (the hub's process; for
the direct rows the upstream's: a figure that other load on the machine disturbs less than
requests/s), and the hub's peak resident memory during the run. The targets that compare two hub
figures (the batch document against one invoke, the 100,000-tenant registry against the small one)
are judged on paired rounds: those scenarios again, back to back, five times, and the median ratio.

${MARKER}
`;

export function writeResults(section: string): string {
  const existing = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const at = existing.indexOf(MARKER);
  const older = at >= 0 ? existing.slice(at + MARKER.length).replace(/^\n+/, '') : existing;
  const head = at >= 0 ? existing.slice(0, at + MARKER.length) + '\n' : PREAMBLE;
  writeFileSync(RESULTS, `${head}\n${section}${older ? `\n${older}` : ''}`);
  return RESULTS;
}

const README = script('README.md');
const README_START = '<!-- bench:latest -->';
const README_END = '<!-- /bench:latest -->';

/** One line per scenario, the databases side by side: requests/s, share of the direct call, p50. */
export function summaryTable(dbs: DbResult[]): string {
  const head = `| scenario | ${dbs.map((d) => `${d.name.replace(/ \(.*\)$/, '')}: req/s | vs direct | p50 ms`).join(' | ')} |`;
  const rule = `|---|${dbs.map(() => '---:|---:|---:').join('|')}|`;
  const directs = dbs.map((d) => d.rows.filter((r) => r.key === 'direct'));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const lines = [`| upstream called directly (mean of the run's direct runs) | ${directs.map((rs) => `${f0(mean(rs.map((r) => r.rps)))} | 100% | ${f2(mean(rs.map((r) => r.p50)))}`).join(' | ')} |`];
  const keys = [...new Set(dbs.flatMap((d) => d.rows.filter((r) => r.hub).map((r) => r.key)))];
  for (const key of keys) {
    const rows = dbs.map((d) => d.rows.find((r) => r.key === key));
    const label = rows.find(Boolean)!.label;
    const cells = rows.map((r) => (r ? `${f0(r.rps)} | ${r.direct ? pct(r.rps / r.direct.rps) : ''} | ${f2(r.p50)}` : ' | | '));
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  return [head, rule, ...lines].join('\n');
}

/** Replaces the README's marked section with the newest summary; false when there are no markers. */
export function writeReadme(info: RunInfo, dbs: DbResult[]): boolean {
  if (!existsSync(README)) return false;
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) return false;
  const when = info.date.toISOString().slice(0, 10);
  const body = `Latest run (${when}, \`${info.command}\`; ${machine()}; full tables and targets in bench/RESULTS.md):\n\n${summaryTable(dbs)}`;
  writeFileSync(README, text.slice(0, start + README_START.length) + '\n' + body + '\n' + text.slice(end));
  return true;
}

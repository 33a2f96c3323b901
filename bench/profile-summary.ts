// npx tsx bench/profile-summary.ts <file.cpuprofile> [top] [lastSeconds]
// npx tsx bench/profile-summary.ts <file.cpuprofile> --callers <regex>: the heaviest paths into a function
// Summarises a V8 CPU profile (node --cpu-prof): self and inclusive time per function and per
// module (package, src file, node internals), as shares of the non-idle samples. lastSeconds keeps
// only the profile's last seconds (the measured load, without start-up and warm-up).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const bench = url.indexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1);
  return url;
}

/** A .cpuprofile with its nodes by id and each node's parent. */
function loadProfile(file: string) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, Node>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  return { p, byId, parent };
}

export function summarise(file: string, top = 25, lastSeconds?: number): string {
  const { p, byId, parent } = loadProfile(file);
  // Sample times (µs since start), to keep the last seconds only.
  const times: number[] = [];
  let t = p.startTime;
  for (const d of p.timeDeltas) times.push((t += d));
  const from = lastSeconds ? p.endTime - lastSeconds * 1e6 : -Infinity;

  const label = (n: Node) => {
    const f = n.callFrame;
    const name = f.functionName || '(anonymous)';
    return f.url ? `${name} ${moduleOf(f.url, name)}:${f.lineNumber + 1}` : name;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const modSelf = new Map<string, number>();
  const modIncl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const add = (m: Map<string, number>, k: string, v = 1) => m.set(k, (m.get(k) ?? 0) + v);
  for (let i = 0; i < p.samples.length; i++) {
    if (times[i]! < from) continue;
    const leaf = byId.get(p.samples[i]!)!;
    if (leaf.callFrame.functionName === '(idle)') {
      idle++;
      continue;
    }
    total++;
    add(self, label(leaf));
    add(modSelf, moduleOf(leaf.callFrame.url, leaf.callFrame.functionName));
    const seen = new Set<string>();
    const seenMod = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!;
      if (n.callFrame.functionName === '(root)') break;
      const l = label(n);
      if (!seen.has(l)) {
        seen.add(l);
        add(incl, l);
      }
      const m = moduleOf(n.callFrame.url, n.callFrame.functionName);
      if (!seenMod.has(m)) {
        seenMod.add(m);
        add(modIncl, m);
      }
    }
  }
  const pct = (v: number) => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
  const list = (title: string, m: Map<string, number>, n: number) =>
    `${title}\n` +
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${pct(v)}  ${k}`)
      .join('\n') +
    '\n';
  return (
    `samples: ${total} busy, ${idle} idle${lastSeconds ? ` (last ${lastSeconds} s)` : ''}\n` +
    list('self time by module', modSelf, 20) +
    list('inclusive time by module', modIncl, 20) +
    list('self time by function', self, top) +
    list('inclusive time by function', incl, top)
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, a, b] = process.argv.slice(2);
  if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top] [lastSeconds] | <file> --callers <regex> [depth]');
  if (a === '--callers') process.stdout.write(callersOf(file, new RegExp(b ?? '.'), 10));
  else process.stdout.write(summarise(file, a ? Number(a) : 25, b ? Number(b) : undefined));
}

/** The heaviest call paths (outermost 'depth' frames above) ending in functions matching pattern. */
export function callersOf(file: string, pattern: RegExp, depth = 8, top = 8): string {
  const { p, byId, parent } = loadProfile(file);
  const counts = new Map<number, number>();
  for (const s of p.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  // inclusive samples per node
  const inclusive = new Map<number, number>();
  for (const [id, c] of counts) for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) inclusive.set(x, (inclusive.get(x) ?? 0) + c);
  const paths = new Map<string, number>();
  const total = p.samples.length;
  for (const n of p.nodes) {
    if (!pattern.test(`${n.callFrame.functionName} ${n.callFrame.url}`)) continue;
    // skip nodes nested inside another match (counted there)
    let nested = false;
    for (let x = parent.get(n.id); x !== undefined; x = parent.get(x)) {
      const f = byId.get(x)!.callFrame;
      if (pattern.test(`${f.functionName} ${f.url}`)) nested = true;
    }
    if (nested) continue;
    const chain: string[] = [];
    for (let x: number | undefined = n.id; x !== undefined && chain.length < depth; x = parent.get(x)) {
      const f = byId.get(x)!.callFrame;
      chain.push(`${f.functionName || '(anon)'}@${moduleOf(f.url, f.functionName)}:${f.lineNumber + 1}`);
    }
    const k = chain.join(' < ');
    paths.set(k, (paths.get(k) ?? 0) + (inclusive.get(n.id) ?? 0));
  }
  return [...paths].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${((100 * v) / total).toFixed(2)}%  ${k}`).join('\n') + '\n';
}

// npx tsx bench/heap-summary.ts <file.heapsnapshot> [top]
// Self size of a V8 heap snapshot grouped by node type and constructor/name: where the heap goes.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string[] | string)[] } };
  nodes: number[];
  strings: string[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: heap-summary.ts <file.heapsnapshot> [top]');
const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = s.snapshot.meta.node_fields;
const types = s.snapshot.meta.node_types[0] as string[];
const F = fields.length;
const iType = fields.indexOf('type');
const iName = fields.indexOf('name');
const iSize = fields.indexOf('self_size');
const groups = new Map<string, { size: number; count: number }>();
let total = 0;
for (let i = 0; i < s.nodes.length; i += F) {
  const type = types[s.nodes[i + iType]!]!;
  let name = s.strings[s.nodes[i + iName]!]!;
  if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(strings)';
  else if (type === 'code') name = '(code)';
  else if (name.length > 60) name = name.slice(0, 60) + '...';
  const size = s.nodes[i + iSize]!;
  total += size;
  const k = `${type}: ${name}`;
  const g = groups.get(k) ?? { size: 0, count: 0 };
  g.size += size;
  g.count++;
  groups.set(k, g);
}
process.stdout.write(`total self size ${(total / 2 ** 20).toFixed(1)} MB\n`);
for (const [k, g] of [...groups].sort((a, b) => b[1].size - a[1].size).slice(0, Number(topArg ?? 40))) {
  process.stdout.write(`${(g.size / 2 ** 20).toFixed(1).padStart(8)} MB ${String(g.count).padStart(9)}  ${k}\n`);
}

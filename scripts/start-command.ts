// What `npm start` runs after building: its environment assignments and node flags, read from
// package.json, so that the cluster manager and the benchmark start hubs as `npm start` does (one
// place sets them).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface StartCommand {
  /** NAME=value and NAME=${NAME:-value} before `node` (the default when the caller's environment has none) */
  env: Record<string, string>;
  /** flags between `node` and the script */
  nodeArgs: string[];
  /** the compiled entry point, an absolute path */
  script: string;
}

export function startCommand(): StartCommand {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const run = pkg.scripts.start.split('&&').pop()!.trim().split(/\s+/);
  const env: Record<string, string> = {};
  const nodeArgs: string[] = [];
  let i = 0;
  for (; i < run.length && run[i] !== 'node'; i++) {
    const m = /^([A-Z_][A-Z0-9_]*)=(?:\$\{\1:-(.*)\}|(.*))$/.exec(run[i]!);
    if (!m) throw new Error(`package.json scripts.start: cannot read "${run[i]}"`);
    env[m[1]!] = process.env[m[1]!] ?? m[2] ?? m[3]!;
  }
  for (i++; i < run.length && run[i]!.startsWith('--'); i++) nodeArgs.push(run[i]!);
  if (run[i] !== 'dist/main.js') throw new Error(`package.json scripts.start does not end in "node ... dist/main.js"`);
  return { env, nodeArgs, script: path.join(ROOT, 'dist', 'main.js') };
}

// What `npm start` runs after building: its environment assignments and node flags, read from
// package.json, so that the cluster manager and the benchmark start hubs as `npm start` does (one
// place sets them).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface StartCommand {
  /** the assignments before `node`, as the shell applies them to the caller's environment */
  env: Record<string, string>;
  /** flags between `node` and the script */
  nodeArgs: string[];
  /** the compiled entry point, an absolute path */
  script: string;
}

// NAME=value (the value wins, as in the shell) or NAME=${NAME:-value} (the caller's own non-empty
// value wins); nothing else a shell would expand.
const ASSIGNMENT = /^([A-Z_][A-Z0-9_]*)=(?:\$\{([A-Z_][A-Z0-9_]*):-([^$"'`\\{}]*)\}|([^$"'`\\{}]*))$/;

/** Reads `... && [NAME=value ...] node [--flag ...] dist/main.js`; throws on anything else. */
export function parseStartScript(script: string, callerEnv: Record<string, string | undefined>): Omit<StartCommand, 'script'> {
  const run = script.split('&&').pop()!.trim().split(/\s+/);
  const env: Record<string, string> = {};
  const nodeArgs: string[] = [];
  let i = 0;
  for (; i < run.length && run[i] !== 'node'; i++) {
    const m = ASSIGNMENT.exec(run[i]!);
    if (!m || (m[2] !== undefined && m[2] !== m[1])) throw new Error(`package.json scripts.start: cannot read "${run[i]}"`);
    env[m[1]!] = m[2] !== undefined ? callerEnv[m[1]!] || m[3]! : m[4]!;
  }
  for (i++; i < run.length && run[i]!.startsWith('--'); i++) nodeArgs.push(run[i]!);
  if (run[i] !== 'dist/main.js' || i !== run.length - 1) throw new Error('package.json scripts.start does not end in "node [--flag ...] dist/main.js"');
  return { env, nodeArgs };
}

export function startCommand(): StartCommand {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return { ...parseStartScript(pkg.scripts.start, process.env), script: path.join(ROOT, 'dist', 'main.js') };
}

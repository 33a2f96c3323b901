// A small process manager for running several hub processes on one machine (`npm run cluster`):
// HUB_PROCESSES processes (default 2) on ports HUB_PORT, HUB_PORT+1, ... sharing DATABASE_URL.
// A process that dies is restarted after a second; SIGTERM/SIGINT is passed on to every process,
// which drains (readyz 503, in-flight calls finish, records flushed) before this script exits.
// In production use your platform's manager (systemd, Kubernetes, PM2); this shows the contract.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startCommand } from './start-command.js';

const count = Number(process.env.HUB_PROCESSES ?? 2);
const basePort = Number(process.env.HUB_PORT ?? 4000);
if (!process.env.DATABASE_URL) {
  process.stderr.write('npm run cluster needs DATABASE_URL (and HUB_ENCRYPTION_KEY): the embedded database serves one process only.\n');
  process.exit(2);
}
if (!Number.isInteger(count) || count < 1) {
  process.stderr.write('HUB_PROCESSES must be a positive integer\n');
  process.exit(2);
}

// The compiled build (`npm run cluster` compiles first), with the flags and environment `npm start` gives it.
const run = startCommand();
if (!existsSync(run.script)) {
  process.stderr.write(`${run.script} is missing: npm run cluster compiles it (or run npm run build first).\n`);
  process.exit(2);
}
let stopping = false;
/** a hub that did not drain cleanly (non-zero exit or a signal) makes the manager exit 1 */
let drainFailed = false;
const children = new Map<number, ChildProcess>();

function start(i: number) {
  const port = basePort + i;
  // Processes start together: migrations are applied once, under an advisory lock.
  const child = spawn(process.execPath, [...run.nodeArgs, run.script], {
    env: { ...process.env, ...run.env, HUB_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.set(i, child);
  const prefix = (stream: NodeJS.WritableStream) => (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line) stream.write(`[hub-${i} :${port}] ${line}\n`);
  };
  child.stdout!.on('data', prefix(process.stdout));
  child.stderr!.on('data', prefix(process.stderr));
  child.on('exit', (code, signal) => {
    children.delete(i);
    if (stopping) {
      if (code !== 0) {
        drainFailed = true;
        process.stderr.write(`[cluster] hub-${i} did not drain cleanly (${signal ?? code})\n`);
      }
      if (children.size === 0) process.exit(drainFailed ? 1 : 0);
      return;
    }
    process.stderr.write(`[cluster] hub-${i} exited (${signal ?? code}); restarting in 1 s\n`);
    // Not after a SIGTERM that came meanwhile: that hub would never be told to stop.
    setTimeout(() => stopping || start(i), 1000);
  });
}

for (let i = 0; i < count; i++) start(i);

const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`[cluster] ${signal}: draining ${children.size} hub processes\n`);
  for (const child of children.values()) child.kill('SIGTERM');
  if (children.size === 0) process.exit(0);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

// Child processes of the benchmark (the upstream and the hubs): started pinned to a CPU where
// taskset exists, waited for, and always stopped (SIGTERM, then SIGKILL after a bound).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

let tasksetChecked: boolean | undefined;
export function hasTaskset(): boolean {
  if (tasksetChecked === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      tasksetChecked = true;
    } catch {
      tasksetChecked = false;
    }
  }
  return tasksetChecked;
}

/** Pins this process, all its threads and the threads it starts later, to one CPU. */
export function pinSelf(cpu: number): boolean {
  if (!hasTaskset()) return false;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  return true;
}

/** Compiles a tree's src/ to its dist/ (`npm run build`) with this tree's TypeScript. */
export function compileTree(tree: string): void {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(tree, 'tsconfig.build.json')], { cwd: tree, stdio: 'inherit' });
}

let built = false;
/** Compiles src/ to dist/ once per run (`npm run build`): the hub runs as `npm start` runs it. */
export function buildHub(): string {
  if (!built) {
    compileTree(ROOT);
    built = true;
  }
  return path.join(ROOT, 'dist', 'main.js');
}

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** the last lines it printed (for error messages) */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<Child>();

/** Starts `node --import tsx <script>` (a .js script: plain node) pinned to cpu (when taskset exists). */
export function startNode(name: string, script: string, opts: { cpu?: number; env?: Record<string, string>; nodeArgs?: string[] }): Child {
  const args = [...(opts.nodeArgs ?? []), ...(script.endsWith('.js') ? [] : ['--import', 'tsx']), script];
  const pinned = opts.cpu !== undefined && hasTaskset();
  const proc = pinned
    ? spawn('taskset', ['-c', String(opts.cpu), process.execPath, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: Child = {
    name,
    // taskset execs the program: the pid is the program's own.
    pid: proc.pid ?? -1,
    proc,
    output: () => lines.join('\n'),
    stop: async () => {
      running.delete(child);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
  running.add(child);
  exited.then(() => running.delete(child));
  return child;
}

/** Stops every child still running; bounded by stop()'s own SIGKILL timer. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop().catch(() => {})));
}

/** Last resort on a synchronous exit path: no waiting possible. */
export function killAllNow(): void {
  for (const c of running) c.proc.kill('SIGKILL');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves with the first stdout line matching re, rejects if the child exits or time runs out. */
export function waitForLine(child: Child, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const m = re.exec(buffer);
      if (m) done(() => resolve(m));
    };
    const onExit = () => done(() => reject(new Error(`${child.name} exited before it was ready:\n${child.output()}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`${child.name} not ready after ${timeoutMs} ms:\n${child.output()}`))), timeoutMs);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      child.proc.stdout!.off('data', onData);
      child.proc.off('exit', onExit);
      fn();
    };
    child.proc.stdout!.on('data', onData);
    child.proc.once('exit', onExit);
  });
}

/** Polls url until it answers 200; rejects if the child exits or time runs out. */
export async function waitForHttp(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) throw new Error(`${child.name} exited during start-up:\n${child.output()}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${child.name} not ready after ${timeoutMs} ms:\n${child.output()}`);
}

let ticksPerSecond: number | undefined;

/** CPU time (user + system) a process has used so far, in ms (Linux), or null. */
export function cpuMsOf(pid: number): number | null {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    // Fields after the command name: state is the 1st, utime the 12th, stime the 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** Resident set size of a process in bytes (Linux), or null. */
export function rssOf(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const script = (...parts: string[]) => path.join(ROOT, ...parts);

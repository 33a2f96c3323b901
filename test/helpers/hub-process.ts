// A hub as a real operating-system process (`node --import tsx src/main.ts`), for what only
// separate processes can show: caches kept coherent across them, kill -9, SIGTERM drains, start-up
// races. It listens on a free port on loopback and is ready once /readyz says so; its output lines
// are kept for assertions.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port.js';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface HubProcess {
  url: string;
  pid: number;
  proc: ChildProcess;
  /** every line it printed */
  lines: string[];
  /** GraphQL over HTTP with the given key */
  gql<T = any>(query: string, variables?: Record<string, unknown>, key?: string): Promise<{ status: number; body: { data?: T; errors?: { message: string; extensions?: Record<string, any> }[] } }>;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<number | null>;
  /** SIGTERM and wait (SIGKILL after 20 s) */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export async function startHubProcess(env: Record<string, string>, opts: { timeoutMs?: number; /** node's arguments (default: the sources through tsx) */ args?: string[] } = {}): Promise<HubProcess> {
  // A free port chosen here, and readiness from /readyz: nothing depends on the log level.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, opts.args ?? ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HUB_HOST: '127.0.0.1', HUB_LOG_LEVEL: 'info', ...env, HUB_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffered = '';
  const take = (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts.filter(Boolean));
  };
  proc.stdout!.on('data', take);
  proc.stderr!.on('data', take);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`hub process exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${lines.join('\n')}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`hub process was not ready in time:\n${lines.join('\n')}`);
    }
    const ready = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const hub: HubProcess = {
    url,
    pid: proc.pid!,
    proc,
    lines,
    exited,
    gql: async (query, variables, key) => {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { status: res.status, body: (await res.json()) as any };
    },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
  return hub;
}

/** Waits until check() is true, polling every 20 ms; false once withinMs has passed. */
export async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<boolean> {
  const end = Date.now() + withinMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

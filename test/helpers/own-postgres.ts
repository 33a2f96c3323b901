// A PostgreSQL server of the test's own: initdb into a temporary directory, started on a free
// loopback port, stopped like a crash (`pg_ctl stop -m immediate`) and started again. Tests that
// take the database away use it, so the shared server of the suite is never touched.
//
// Binaries: HUB_TEST_PG_BIN, else the newest /usr/lib/postgresql/<version>/bin, else
// `pg_config --bindir`. Missing binaries are an error, not a skip. initdb refuses to run as root:
// as root the server runs as the `postgres` user, in a directory that user owns.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { freePort } from './free-port.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface OwnPostgres {
  /** postgresql:// URL of the `postgres` database (trust auth, user postgres) */
  url: string;
  port: number;
  /** Stops the server at once, without a shutdown checkpoint (as a crash would). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (if running) and removes its directory. Safe to call more than once. */
  destroy(): Promise<void>;
}

export function postgresBinDir(): string {
  const fromEnv = process.env.HUB_TEST_PG_BIN;
  const candidates: string[] = fromEnv ? [fromEnv] : [];
  if (!fromEnv) {
    const root = '/usr/lib/postgresql';
    const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
    candidates.push(...versions.map((v) => path.join(root, v, 'bin')));
    try {
      candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
    } catch {
      // no pg_config on PATH
    }
  }
  const found = candidates.find((dir) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl')));
  if (!found) {
    throw new Error(
      `PostgreSQL server binaries (initdb, pg_ctl) not found in ${candidates.join(', ') || '/usr/lib/postgresql/*/bin'}; install the PostgreSQL server package or set HUB_TEST_PG_BIN`,
    );
  }
  return found;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-own-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  // As root, every server command runs as the postgres user, which must own the directory.
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    await chown(dir, uid, gid);
  }
  const pgCtl = path.join(bin, 'pg_ctl');
  let port = 0;
  let running = false;
  let destroyed = false;

  const stopNow = async () => {
    if (!running) return;
    running = false;
    await as(pgCtl, ['-D', data, '-m', 'immediate', '-w', 'stop']);
  };
  const start = async () => {
    const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    try {
      await as(pgCtl, ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', options, 'start']);
    } catch (error) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed: ${(error as Error).message}\n${log.slice(-2000)}`);
    }
    running = true;
  };
  // A crashed test worker must not leave a server behind.
  const onExit = () => {
    try {
      if (running) execFileSync(asRoot ? 'runuser' : pgCtl, [...(asRoot ? ['-u', 'postgres', '--', pgCtl] : []), '-D', data, '-m', 'immediate', 'stop'], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  };
  process.once('exit', onExit);
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', onExit);
    await stopNow().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    // The port is free when chosen; another process may take it before the server binds: retry.
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        await start();
        break;
      } catch (error) {
        if (attempt >= 2) throw error;
      }
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, start, stop: stopNow, destroy };
}

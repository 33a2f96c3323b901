// Which database errors mean "retry later" (SERVICE_UNAVAILABLE, records kept queued) and which
// are real faults: checked against errors a real PostgreSQL and a real pg pool produce.
import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { POSTGRES_URL, testDatabases } from './helpers/databases.js';
import { isDatabaseTransient, isDatabaseUnavailable } from '../src/utils/database-errors.js';

const onPostgres = testDatabases().includes('postgres');

async function caught(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe.runIf(onPostgres)('database errors on postgres', () => {
  it('a pool with no free connection in time is unavailable (every connection busy)', async () => {
    // The wait for a free connection is what times out here, not connecting: the one connection is
    // made first, so the timeout stays generous enough for a loaded CI machine.
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1, connectionTimeoutMillis: 1000 });
    const held = await pool.connect();
    try {
      const error = await caught(() => pool.connect());
      expect(String((error as Error).message)).toMatch(/timeout exceeded when trying to connect/);
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(isDatabaseTransient(error)).toBe(true);
    } finally {
      held.release();
      await pool.end();
    }
  });

  it('a server that accepts and never answers is unavailable after the connect timeout', async () => {
    const sockets = new Set<net.Socket>();
    const hanging = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const { port } = hanging.address() as net.AddressInfo;
    const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'test', max: 1, connectionTimeoutMillis: 100 });
    try {
      const error = await caught(() => pool.connect());
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(isDatabaseTransient(error)).toBe(true);
    } finally {
      await pool.end();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });

  it('a statement timeout passes; a missing table is a real fault', async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      await client.query('SET statement_timeout = 20');
      const slow = await caught(() => client.query('SELECT pg_sleep(1)'));
      expect(isDatabaseUnavailable(slow)).toBe(false);
      expect(isDatabaseTransient(slow)).toBe(true);
      const missing = await caught(() => client.query('SELECT * FROM no_such_table_here'));
      expect(isDatabaseTransient(missing)).toBe(false);
    } finally {
      await client.end();
    }
  });
});

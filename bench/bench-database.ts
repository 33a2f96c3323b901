// A fresh PostgreSQL database for one hub under test, on the benchmark's loopback server
// (HUB_BENCH_POSTGRES_URL), dropped by the clean-up it pushes. Shared by run.ts, profile.ts and ab.ts.
import pg from 'pg';

export const POSTGRES_ADMIN_URL = process.env.HUB_BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export function assertLoopback(url: string) {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) throw new Error(`the benchmark only talks to loopback addresses, not ${host}`);
}

/** Creates the database and returns its URL; cleanups gets its DROP. */
export async function postgresDatabase(name: string, cleanups: (() => Promise<unknown>)[]): Promise<string> {
  assertLoopback(POSTGRES_ADMIN_URL);
  const adminDb = async (sql: string) => {
    const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await adminDb(`CREATE DATABASE "${name}"`);
  cleanups.push(() => adminDb(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

// Which databases the suite runs on: HUB_TEST_DB=pglite|postgres, or both (the default).
// PostgreSQL is never silently skipped: when it is selected and unreachable the suite fails.
export type DbKind = 'pglite' | 'postgres';

export const POSTGRES_URL = process.env.HUB_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
// Each test run names its databases after a run id (set by global-setup), so runs side by side
// on one server never touch each other's databases.
export const RUN_ID = process.env.HUB_TEST_RUN_ID ?? 'local';
export const TEMPLATE_DB = `hub_tpl_${RUN_ID}`;
export const TEST_DB_PREFIX = `hub_t_${RUN_ID}_`;
export const PGLITE_TEMPLATE = new URL(`../../.tmp/pglite-template-${RUN_ID}.tar`, import.meta.url);

export function testDatabases(): DbKind[] {
  const chosen = process.env.HUB_TEST_DB;
  if (chosen === 'pglite' || chosen === 'postgres') return [chosen];
  return ['pglite', 'postgres'];
}

export function postgresUrlFor(database: string): string {
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

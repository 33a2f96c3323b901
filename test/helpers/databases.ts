// Which databases the suite runs on: HUB_TEST_DB=pglite|postgres, or both (the default).
// PostgreSQL is never silently skipped: when it is selected and unreachable the suite fails.
export type DbKind = 'pglite' | 'postgres';

export const POSTGRES_URL = process.env.HUB_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
export const TEMPLATE_DB = 'hub_test_template';
export const PGLITE_TEMPLATE = new URL('../../.tmp/pglite-template.tar', import.meta.url);

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

// Configuration of the Prisma CLI only (generate, migrate dev/diff). The running hub applies the
// committed migrations itself (src/db/migrate.ts) and never starts the CLI.
//
// The CLI uses Prisma's JavaScript schema engine over a driver adapter, so it needs no native
// engine download (the hub installs in air-gapped networks). Without DATABASE_URL it works on a
// throw-away in-memory PGlite; with one it uses that PostgreSQL.
import { PGlite } from '@electric-sql/pglite';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { defineConfig } from 'prisma/config';
import { PrismaPGlite } from 'pglite-prisma-adapter';

// The schema file reads env("DATABASE_URL"); the CLI cannot parse it without a postgres-looking
// value, so the embedded case gets a placeholder that is never connected to.
const PLACEHOLDER = 'postgresql://embedded@localhost/pglite';
if (!process.env.DATABASE_URL) process.env.DATABASE_URL = PLACEHOLDER;

function pgliteFactory(): SqlMigrationAwareDriverAdapterFactory {
  return new PrismaPGlite(new PGlite('memory://'));
}

async function postgresFactory(url: string): Promise<SqlMigrationAwareDriverAdapterFactory> {
  const { PrismaPg } = await import('@prisma/adapter-pg');
  const u = new URL(url);
  // Discrete settings, not a connectionString: with a connection string `migrate dev` would use
  // the real database as its shadow database.
  return new PrismaPg({
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1) || 'postgres',
  }) as unknown as SqlMigrationAwareDriverAdapterFactory;
}

// The CLI calls adapter() more than once per command: build the factory once.
let factory: Promise<SqlMigrationAwareDriverAdapterFactory> | undefined;

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  adapter: async () => {
    const url = process.env.DATABASE_URL;
    factory ??= url && url !== PLACEHOLDER ? postgresFactory(url) : Promise.resolve(pgliteFactory());
    return factory;
  },
});

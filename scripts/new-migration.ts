// Writes the next migration: the SQL that takes the last committed prisma/schema.prisma to the
// current one (`npm run migrate:new -- <name>`). Needs no database and downloads nothing; the
// test suite then checks that all migrations together build exactly schema.prisma.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const name = process.argv[2]?.replace(/[^a-z0-9_]+/gi, '_').toLowerCase();
if (!name) {
  process.stderr.write('usage: npm run migrate:new -- <name>\n');
  process.exit(2);
}
const previous = path.join(mkdtempSync(path.join(tmpdir(), 'hub-migrate-')), 'schema.prisma');
writeFileSync(previous, execFileSync('git', ['show', 'HEAD:prisma/schema.prisma']));
const sql = execFileSync(
  'npx',
  ['prisma', 'migrate', 'diff', '--from-schema-datamodel', previous, '--to-schema-datamodel', 'prisma/schema.prisma', '--script'],
  { encoding: 'utf8', env: { ...process.env, DATABASE_URL: '' } },
);
if (!sql.trim() || /^-- This is an empty migration/m.test(sql)) {
  process.stdout.write('prisma/schema.prisma has no changes since HEAD\n');
  process.exit(0);
}
const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
const dir = path.join('prisma', 'migrations', `${stamp}_${name}`);
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'migration.sql'), sql);
process.stdout.write(`${dir}/migration.sql written\n`);

// The typed client: generated from the committed schema.graphql, current, and type-checking
// together with the whole project (src, tests, examples).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cwd = new URL('..', import.meta.url);

describe('typed clients', () => {
  it('examples/generated is what graphql-codegen makes of schema.graphql (run `npm run codegen`)', { timeout: 120_000 }, async () => {
    const result = await run('npx', ['graphql-codegen', '--config', 'codegen.ts', '--check'], { cwd }).then(
      () => 'current',
      (error: { stdout?: string; stderr?: string }) => `stale or failing:\n${error.stdout}\n${error.stderr}`,
    );
    expect(result).toBe('current');
  });

  it('the project, its tests and the example client type-check', { timeout: 180_000 }, async () => {
    const result = await run('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json'], { cwd }).then(
      () => 'ok',
      (error: { stdout?: string }) => error.stdout ?? 'tsc failed',
    );
    expect(result).toBe('ok');
  });
});

// Reads the environment, starts the hub, drains on SIGTERM/SIGINT.
import { setFlagsFromString } from 'node:v8';
import { ConfigError, parseConfig } from './config.js';
import { startHub } from './hub.js';

async function main() {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(error.message + '\n');
      process.exit(2);
    }
    throw error;
  }
  // V8 lets its old generation grow to about 4x the live heap under a high allocation rate (a
  // gateway's steady state): ~180 MB of mostly garbage at 50 MB live. A fixed factor keeps RSS
  // proportional to what is live, for some more frequent major GCs (bench/RESULTS.md). V8 reads the
  // factor at each GC, so setting it here, before the load, works like the command-line flag.
  if (config.heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.heapGrowthPercent}`);
  // The embedded PGlite's WASM code: V8's optimising tier compiles it on background threads whose
  // malloc arenas keep 55-85 MB resident for good; the baseline tier alone keeps ~10 MB. Database
  // work runs slower (point reads ~15%, joins ~50%); a warm invoke only writes its audit record
  // (~1-2% more CPU). Set before PGlite is loaded (it is imported only without a DATABASE_URL).
  if (!config.databaseUrl && config.pgliteBaselineWasm) setFlagsFromString('--liftoff-only');
  const hub = await startHub(config);
  if (hub.generatedAdminKey) {
    // Printed once, outside the logger (which redacts keys), and never stored in clear.
    process.stdout.write(
      `\n  First start: an admin API key was generated. It is shown only this once; store it now.\n\n    ${hub.generatedAdminKey}\n\n` +
        `  Open ${hub.url}/graphql and send it as the header  Authorization: Bearer <key>\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    hub.log.info('draining', { signal });
    hub.close().then(
      () => process.exit(0),
      (error: unknown) => {
        hub.log.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`tenant-hub failed to start: ${(error as Error)?.message ?? error}\n`);
  process.exit(1);
});

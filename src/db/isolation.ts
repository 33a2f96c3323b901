// The hub's SQL on a PostgreSQL whose default isolation is not READ COMMITTED. Under READ
// COMMITTED, PostgreSQL's default, a statement that waited for a row another session changed
// re-checks the new version and goes on; under REPEATABLE READ or SERIALIZABLE as the database's
// default it fails with a serialization error instead (a key revoked while its lastUsedAt is
// touched, a binding deleted during its token refresh, two calls with one idempotency key), which
// the caller saw as INTERNAL_SERVER_ERROR. So:
// - a transaction Prisma opens on its own (updateMany, nested writes: no isolation level given)
//   runs READ COMMITTED, as the hub's interactive transactions do (transactionOptions);
// - a single statement outside a transaction that is refused with a serialization failure (40001)
//   or a deadlock (40P01) changed nothing, and is sent again, up to ATTEMPTS times.
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrismaPg } from '@prisma/adapter-pg';

type Adapter = Awaited<ReturnType<PrismaPg['connect']>>;
type AdapterFactory = Pick<PrismaPg, 'provider' | 'adapterName' | 'connect' | 'connectToShadowDb'>;

const RETRYABLE = new Set(['40001', '40P01']);
const ATTEMPTS = 5;

/** The SQLSTATE of a driver adapter's error (DriverAdapterError keeps it as cause.originalCode). */
const sqlStateOf = (error: unknown) => String((error as { cause?: { originalCode?: unknown } } | null)?.cause?.originalCode);

async function retried<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= ATTEMPTS || !RETRYABLE.has(sqlStateOf(error))) throw error;
      // The sessions that collided try again at different moments.
      await sleep(Math.random() * 5 * attempt);
    }
  }
}

function wrap(adapter: Adapter): Adapter {
  const queryRaw = adapter.queryRaw.bind(adapter);
  const executeRaw = adapter.executeRaw.bind(adapter);
  const startTransaction = adapter.startTransaction.bind(adapter);
  adapter.queryRaw = (query) => retried(() => queryRaw(query));
  adapter.executeRaw = (query) => retried(() => executeRaw(query));
  adapter.startTransaction = (isolationLevel) => startTransaction(isolationLevel ?? 'READ COMMITTED');
  return adapter;
}

/** The factory's adapters, with their transactions and single statements as above. */
export function readCommittedOrRetried(factory: AdapterFactory): AdapterFactory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => wrap(await factory.connect()),
    connectToShadowDb: async () => wrap(await factory.connectToShadowDb()),
  };
}

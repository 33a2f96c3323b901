// The hub's SQL on a PostgreSQL whose default isolation is not READ COMMITTED.
// - Every transaction runs READ COMMITTED: the hub's own ($transaction) and those Prisma opens by
//   itself (updateMany, nested writes) alike; none names an isolation level, so the adapter's
//   startTransaction sets it. The hub's transactions are written for it: under REPEATABLE READ a
//   transaction's snapshot is taken by its first statement, which may be one that waits for a lock
//   (an OAuth2 refresh's, the first start's), so what the lock's holder stored meanwhile is unseen
//   (a credential change left the old client's access token in place).
// - A single statement outside a transaction that waited for a row another session changed
//   re-checks the new version under READ COMMITTED, PostgreSQL's default; under REPEATABLE READ or
//   SERIALIZABLE as the database's default it is refused with a serialization failure (40001) or
//   a deadlock (40P01) instead (a tenant renamed while it is disabled, a binding deleted during its
//   token refresh, two calls with one idempotency key), which the caller saw as
//   INTERNAL_SERVER_ERROR. The refused statement changed nothing: it is sent again, up to ATTEMPTS
//   times.
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

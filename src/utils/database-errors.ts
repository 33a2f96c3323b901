// Recognises "the database is not there" among the shapes Prisma, its driver adapters and the
// drivers throw: Prisma codes, adapter error kinds, SQLSTATEs and socket error codes.
const CODES = new Set([
  'P1001', 'P1002', 'P1008', 'P1017', 'P2024', // Prisma: unreachable, timeout, closed, pool timeout
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', // SQLSTATE
]);
const KINDS = new Set(['DatabaseNotReachable', 'DatabaseDoesNotExist', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TlsConnectionError', 'DatabaseAccessDenied']);
// "timeout exceeded when trying to connect": pg's pool found no free connection in time (a database
// that hangs, or every connection busy): the request cannot be served now, retry later.
const MESSAGES = /timeout exceeded when trying to connect|Connection terminated|ECONNREFUSED|Can't reach database|not currently accepting connections|terminating connection|the database system is (starting up|shutting down)|PGlite is closed/i;

type ErrorShape = { code?: unknown; kind?: unknown; cause?: unknown; message?: unknown };

/** The error and the causes it wraps, at most five deep (drivers and adapters nest them). */
function* causes(error: unknown): Generator<ErrorShape> {
  for (let e = error as ErrorShape | undefined, i = 0; e && i < 5; e = e.cause as ErrorShape | undefined, i++) yield e;
}

export function isDatabaseUnavailable(error: unknown): boolean {
  for (const e of causes(error)) {
    if (typeof e.code === 'string' && CODES.has(e.code)) return true;
    if (typeof e.kind === 'string' && KINDS.has(e.kind)) return true;
    if (typeof e.message === 'string' && MESSAGES.test(e.message)) return true;
  }
  return false;
}

// Errors that pass: the write may succeed if tried again later (a transaction that could not start
// or ran out of time, a deadlock, a lock or statement timeout, a serialization failure), besides
// everything isDatabaseUnavailable recognises (a busy pool among them).
const TRANSIENT_CODES = new Set(['P2028', 'P2034', '40001', '40P01', '55P03', '57014']);
const TRANSIENT_MESSAGES = /Unable to start a transaction|Transaction already closed|deadlock detected|canceling statement due to (lock|statement) timeout|could not serialize access/i;

/** The database is away, or refused for a reason that passes: retry rather than give up on the data. */
export function isDatabaseTransient(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return true;
  for (const e of causes(error)) {
    if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && TRANSIENT_MESSAGES.test(e.message)) return true;
  }
  return false;
}

/** A unique index refused the row (SQLSTATE 23505, or Prisma's P2002). */
export function isUniqueViolation(error: unknown): boolean {
  for (const e of causes(error)) {
    if (e.code === '23505' || e.code === 'P2002') return true;
  }
  return false;
}

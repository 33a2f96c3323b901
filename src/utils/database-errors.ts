// Recognises "the database is not there" among the shapes Prisma, its driver adapters and the
// drivers throw: Prisma codes, adapter error kinds, SQLSTATEs and socket error codes.
const CODES = new Set([
  'P1001', 'P1002', 'P1008', 'P1017', 'P2024', // Prisma: unreachable, timeout, closed, pool timeout
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', // SQLSTATE
]);
const KINDS = new Set(['DatabaseNotReachable', 'DatabaseDoesNotExist', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TlsConnectionError', 'DatabaseAccessDenied']);
const MESSAGES = /Connection terminated|ECONNREFUSED|Can't reach database|not currently accepting connections|terminating connection|the database system is (starting up|shutting down)|PGlite is closed/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as { code?: unknown; kind?: unknown; cause?: unknown; message?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && CODES.has(e.code)) return true;
    if (typeof e.kind === 'string' && KINDS.has(e.kind)) return true;
    if (typeof e.message === 'string' && MESSAGES.test(e.message)) return true;
  }
  return false;
}

// Prisma's known request errors, translated to the contract's codes with our own wording.
// Prisma's message (which may quote SQL or values) is never passed on.
import { HubError } from '../errors.js';

// Some driver adapters (PGlite's) surface the PostgreSQL SQLSTATE instead of Prisma's code.
const SQLSTATE_TO_PRISMA: Record<string, string> = { '23505': 'P2002', '23503': 'P2003' };

export function prismaCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { kind?: unknown; code?: unknown } } | null;
  if (typeof e?.code === 'string' && /^P\d{4}$/.test(e.code)) return e.code;
  const state = e?.cause?.kind === 'postgres' ? e.cause.code : undefined;
  return typeof state === 'string' ? SQLSTATE_TO_PRISMA[state] : undefined;
}

export function translatePrismaError(error: unknown, what: { exists?: string; missing?: string }): never {
  const code = prismaCode(error);
  if (code === 'P2002' && what.exists) throw new HubError('BAD_USER_INPUT', what.exists);
  if ((code === 'P2025' || code === 'P2003') && what.missing) throw new HubError('NOT_FOUND', what.missing);
  throw error;
}

// Makes sure an admin can get in on a new hub: HUB_ADMIN_KEY when it is set, else a key generated
// on the first start and printed once (only its hash is stored).
import type { Prisma } from '../db/database.js';
import type { Logger } from '../log.js';
import { fromKey, newApiKey } from './api-keys.js';

export const ADMIN_CALLER_ID = 'admin';
const ENV_KEY_ID = 'env-admin-key';
/** the advisory lock under which a first start creates the admin (exported for a test) */
export const BOOTSTRAP_LOCK = 72_470_002;

export interface AdminBootstrap {
  /** a newly generated admin key (to be shown once), or null */
  generatedKey: string | null;
  /** an admin key was added or replaced: other hub processes must drop what they cached */
  changed: boolean;
}

export async function bootstrapAdmin(prisma: Prisma, adminKey: string | undefined, log: Logger): Promise<AdminBootstrap> {
  return prisma.$transaction(async (tx) => {
    // Two processes starting together on one PostgreSQL must not both generate a key.
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
    await tx.caller.upsert({
      where: { id: ADMIN_CALLER_ID },
      create: { id: ADMIN_CALLER_ID, name: 'Administrator', role: 'ADMIN' },
      update: {},
    });
    if (adminKey) {
      const k = fromKey(adminKey, ENV_KEY_ID);
      const before = await tx.apiKey.findUnique({ where: { id: ENV_KEY_ID }, select: { hash: true, revokedAt: true, expiresAt: true } });
      const changed = !before || before.hash !== k.hash || before.revokedAt !== null || before.expiresAt !== null;
      await tx.apiKey.upsert({
        where: { id: ENV_KEY_ID },
        create: { id: k.id, callerId: ADMIN_CALLER_ID, prefix: k.prefix, hash: k.hash },
        // A changed HUB_ADMIN_KEY replaces the previous one.
        update: { prefix: k.prefix, hash: k.hash, revokedAt: null, expiresAt: null },
      });
      return { generatedKey: null, changed };
    }
    const active = await tx.apiKey.count({
      where: { caller: { role: 'ADMIN' }, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] },
    });
    if (active > 0) return { generatedKey: null, changed: false };
    const k = newApiKey();
    await tx.apiKey.create({ data: { id: k.id, callerId: ADMIN_CALLER_ID, prefix: k.prefix, hash: k.hash } });
    log.info('generated the first admin API key', { prefix: k.prefix });
    return { generatedKey: k.key, changed: true };
  });
}

// Re-encrypts every stored credential with the current key. Run after setting a new
// HUB_ENCRYPTION_KEY with the old one in HUB_ENCRYPTION_PREVIOUS_KEYS; afterwards the old key can go.
import type { Prisma } from '../db/database.js';
import { idempotencyOwner } from '../invoke/idempotency-store.js';
import { accessTokenOwner, bindingOwner } from '../registry/credentials.js';
import type { SecretBox } from './secret-box.js';

export interface Rotation {
  rotated: number;
  keyId: string;
}

export async function rotateCredentials(prisma: Prisma, box: SecretBox): Promise<Rotation> {
  return prisma.$transaction(async (tx) => {
    const stale = await tx.binding.findMany({
      where: { credentialCiphertext: { not: null }, NOT: { credentialKeyId: box.keyId } },
      select: { tenantId: true, systemId: true, credentialCiphertext: true, credentialKeyId: true },
    });
    // Each row is written back only if it still holds what was read: a credential set meanwhile
    // (sealed with the current key already) must not be replaced by the old one re-sealed.
    let rotated = 0;
    for (const b of stale) {
      const owner = bindingOwner(b.tenantId, b.systemId);
      // All or nothing: one credential that cannot be opened aborts the whole rotation.
      const plain = box.open({ keyId: b.credentialKeyId ?? '', ciphertext: b.credentialCiphertext! }, owner);
      const sealed = box.seal(plain, owner);
      const { count } = await tx.binding.updateMany({
        where: { tenantId: b.tenantId, systemId: b.systemId, credentialCiphertext: b.credentialCiphertext },
        data: { credentialCiphertext: sealed.ciphertext, credentialKeyId: sealed.keyId },
      });
      rotated += count;
    }
    // OAuth2 access tokens follow; one that cannot be opened is only a cache: dropped, obtained anew.
    const tokens = await tx.oAuthToken.findMany({
      where: { ciphertext: { not: null }, NOT: { keyId: box.keyId } },
      select: { tenantId: true, systemId: true, ciphertext: true, keyId: true },
    });
    for (const t of tokens) {
      const where = { tenantId: t.tenantId, systemId: t.systemId, ciphertext: t.ciphertext };
      const sealed = reseal(box, t, accessTokenOwner(t.tenantId, t.systemId));
      if (sealed) await tx.oAuthToken.updateMany({ where, data: sealed });
      else await tx.oAuthToken.deleteMany({ where });
    }
    // Stored idempotent answers too (unexpired ones). One that cannot be opened is left as it is:
    // its call did happen, so a repeat must be refused, never run again.
    const answers = await tx.idempotencyRecord.findMany({
      where: { ciphertext: { not: null }, NOT: { keyId: box.keyId }, expiresAt: { gt: new Date() } },
      select: { callerId: true, key: true, ciphertext: true, keyId: true },
    });
    for (const r of answers) {
      const sealed = reseal(box, r, idempotencyOwner(r.callerId, r.key));
      if (sealed) await tx.idempotencyRecord.updateMany({ where: { callerId: r.callerId, key: r.key, ciphertext: r.ciphertext }, data: sealed });
    }
    return { rotated, keyId: box.keyId };
  }, { timeout: 120_000 });
}

/** A row's secret sealed again with the current key, or undefined when it cannot be opened. */
function reseal(box: SecretBox, row: { ciphertext: string | null; keyId: string | null }, owner: string): { ciphertext: string; keyId: string } | undefined {
  let plain: string;
  try {
    plain = box.open({ keyId: row.keyId ?? '', ciphertext: row.ciphertext! }, owner);
  } catch {
    return undefined;
  }
  const sealed = box.seal(plain, owner);
  return { ciphertext: sealed.ciphertext, keyId: sealed.keyId };
}

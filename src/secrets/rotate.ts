// Re-encrypts every stored credential with the current key. Run after setting a new
// HUB_ENCRYPTION_KEY with the old one in HUB_ENCRYPTION_PREVIOUS_KEYS; afterwards the old key can go.
import type { Prisma } from '../db/database.js';
import { bindingOwner } from '../registry/credentials.js';
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
    for (const b of stale) {
      const owner = bindingOwner(b.tenantId, b.systemId);
      // All or nothing: one credential that cannot be opened aborts the whole rotation.
      const plain = box.open({ keyId: b.credentialKeyId ?? '', ciphertext: b.credentialCiphertext! }, owner);
      const sealed = box.seal(plain, owner);
      await tx.binding.update({
        where: { tenantId_systemId: { tenantId: b.tenantId, systemId: b.systemId } },
        data: { credentialCiphertext: sealed.ciphertext, credentialKeyId: sealed.keyId },
      });
    }
    return { rotated: stale.length, keyId: box.keyId };
  }, { timeout: 120_000 });
}

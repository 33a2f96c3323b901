// Binding writes: which deployment of a system serves a tenant, and with which credential.
import type { Prisma } from '../db/database.js';
import { badInput, notFound } from '../errors.js';
import type { Binding, System } from '../generated/prisma/client.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { bindingOwner, sealCredential, type CredentialInput } from './credentials.js';
import { translatePrismaError } from './prisma-errors.js';
import { existsKept, existsUnchanged } from './row-locks.js';
import { checkBaseUrl } from './validate.js';

export interface BindSystem {
  tenantId: string;
  systemId: string;
  baseUrl?: string | null;
  credential?: CredentialInput | null;
  disabled?: boolean | null;
}

/** The URL calls go to: the binding's own, else the shared deployment's. */
export function effectiveBaseUrl(binding: Pick<Binding, 'baseUrl'>, system: Pick<System, 'sharedBaseUrl'>): string {
  return binding.baseUrl ?? system.sharedBaseUrl ?? '';
}

export async function bindSystem(prisma: Prisma, box: SecretBox, input: BindSystem): Promise<Binding> {
  const { tenantId, systemId } = input;
  const baseUrl = input.baseUrl == null ? null : checkBaseUrl('baseUrl', input.baseUrl);
  // Validate and seal before the transaction: nothing is written when the input is bad.
  const credential = sealCredential(box, bindingOwner(tenantId, systemId), input.credential);
  return prisma.$transaction(async (tx) => {
    // The tenant stays, and the system's mode holds, until this binding is stored.
    const [tenant] = await Promise.all([existsKept(tx, 'Tenant', tenantId), existsUnchanged(tx, 'System', systemId)]);
    const system = await tx.system.findUnique({ where: { id: systemId } });
    if (!tenant) throw notFound(`Tenant "${tenantId}" does not exist.`);
    if (!system) throw notFound(`System "${systemId}" does not exist.`);
    if (system.mode === 'EXCLUSIVE' && !baseUrl) throw badInput(`System "${systemId}" is EXCLUSIVE: the binding needs the tenant's own baseUrl.`);
    const data = { baseUrl, ...credential, disabled: input.disabled ?? false };
    const binding = await tx.binding.upsert({
      where: { tenantId_systemId: { tenantId, systemId } },
      create: { tenantId, systemId, ...data },
      update: data,
    });
    await forgetAccessToken(tx, tenantId, systemId);
    return binding;
  });
}

// A new credential (even the same client again) starts without the old access token: a token of
// the previous client must never be sent on behalf of the new one. Runs after the binding row
// is updated, so it waits for a token refresh that holds that row (src/invoke/oauth2-tokens.ts).
async function forgetAccessToken(tx: Pick<Prisma, 'oAuthToken'>, tenantId: string, systemId: string) {
  await tx.oAuthToken.deleteMany({ where: { tenantId, systemId } });
}

export async function setCredential(prisma: Prisma, box: SecretBox, tenantId: string, systemId: string, input: CredentialInput): Promise<Binding> {
  const credential = sealCredential(box, bindingOwner(tenantId, systemId), input);
  return prisma
    .$transaction(async (tx) => {
      const binding = await tx.binding.update({ where: { tenantId_systemId: { tenantId, systemId } }, data: credential });
      await forgetAccessToken(tx, tenantId, systemId);
      return binding;
    })
    .catch((e) => translatePrismaError(e, { missing: `System "${systemId}" is not bound to tenant "${tenantId}".` }));
}

export async function unbindSystem(prisma: Prisma, tenantId: string, systemId: string): Promise<boolean> {
  await prisma.binding
    .delete({ where: { tenantId_systemId: { tenantId, systemId } } })
    .catch((e) => translatePrismaError(e, { missing: `System "${systemId}" is not bound to tenant "${tenantId}".` }));
  return true;
}

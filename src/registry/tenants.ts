// Tenant writes.
import type { Prisma } from '../db/database.js';
import { badInput, notFound } from '../errors.js';
import type { Tenant } from '../generated/prisma/client.js';
import { translatePrismaError } from './prisma-errors.js';
import { lockForWrite } from './row-locks.js';
import { checkId, checkName } from './validate.js';

export interface CreateTenant {
  id: string;
  name: string;
}
export interface UpdateTenant {
  name?: string | null;
  disabled?: boolean | null;
}

export async function createTenant(prisma: Prisma, input: CreateTenant): Promise<Tenant> {
  const data = { id: checkId('id', input.id), name: checkName('name', input.name) };
  return prisma.tenant.create({ data }).catch((e) => translatePrismaError(e, { exists: `Tenant "${data.id}" already exists.` }));
}

export async function updateTenant(prisma: Prisma, id: string, input: UpdateTenant): Promise<Tenant> {
  const data: { name?: string; disabled?: boolean } = {};
  if (input.name != null) data.name = checkName('name', input.name);
  if (input.disabled != null) data.disabled = input.disabled;
  return prisma.tenant.update({ where: { id }, data }).catch((e) => translatePrismaError(e, { missing: `Tenant "${id}" does not exist.` }));
}

/** Removes the tenant with its bindings and the grants on it. Refused while callers belong to it. */
export async function deleteTenant(prisma: Prisma, id: string): Promise<boolean> {
  return prisma.$transaction(async (tx) => {
    // Locked first: a caller being created for this tenant is committed and counted, or waits and
    // then finds no tenant.
    await lockForWrite(tx, 'Tenant', id);
    const tenant = await tx.tenant.findUnique({ where: { id }, select: { id: true, _count: { select: { callers: true } } } });
    if (!tenant) throw notFound(`Tenant "${id}" does not exist.`);
    if (tenant._count.callers > 0) {
      throw badInput(`Tenant "${id}" still has ${tenant._count.callers} caller(s); delete them or move them first.`);
    }
    await tx.tenant.delete({ where: { id } });
    return true;
  });
}

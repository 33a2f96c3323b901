// Callers (calling systems), their API keys and their grants.
import { randomUUID } from 'node:crypto';
import { newApiKey } from '../access/api-keys.js';
import type { Prisma } from '../db/database.js';
import { badInput, notFound } from '../errors.js';
import type { ApiKey, Caller, Grant } from '../generated/prisma/client.js';
import type { HttpMethod, Role } from '../generated/prisma/enums.js';
import { translatePrismaError } from './prisma-errors.js';
import { existsKept } from './row-locks.js';
import { checkId, checkIntRange, checkName, checkPlainPath } from './validate.js';

export interface CreateCaller {
  id?: string | null;
  name: string;
  tenantId?: string | null;
  role?: Role | null;
  quotaPerMinute?: number | null;
}

export interface UpdateCaller {
  name?: string | null;
  disabled?: boolean | null;
  /** null: back to the hub's default */
  quotaPerMinute?: number | null;
}

const checkQuota = (q: number) => checkIntRange('quotaPerMinute', q, 1, 1_000_000);

function checkExpiry(expiresAt: Date | null | undefined): Date | null {
  if (expiresAt == null) return null;
  if (expiresAt.getTime() <= Date.now()) throw badInput('expiresAt must be in the future.');
  return expiresAt;
}

export async function createCaller(prisma: Prisma, input: CreateCaller): Promise<{ caller: Caller; apiKey: string }> {
  const id = input.id == null ? `caller-${randomUUID()}` : checkId('id', input.id);
  const name = checkName('name', input.name);
  const quotaPerMinute = input.quotaPerMinute == null ? null : checkQuota(input.quotaPerMinute);
  const key = newApiKey();
  return prisma.$transaction(async (tx) => {
    if (input.tenantId != null && !(await existsKept(tx, 'Tenant', input.tenantId))) {
      throw notFound(`Tenant "${input.tenantId}" does not exist.`);
    }
    const caller = await tx.caller
      .create({ data: { id, name, role: input.role ?? 'CALLER', tenantId: input.tenantId ?? null, quotaPerMinute } })
      .catch((e) => translatePrismaError(e, { exists: `Caller "${id}" already exists.` }));
    await tx.apiKey.create({ data: { id: key.id, callerId: id, prefix: key.prefix, hash: key.hash } });
    return { caller, apiKey: key.key };
  });
}

export async function updateCaller(prisma: Prisma, id: string, input: UpdateCaller): Promise<Caller> {
  const data: { name?: string; disabled?: boolean; quotaPerMinute?: number | null } = {};
  if (input.name != null) data.name = checkName('name', input.name);
  if (input.disabled != null) data.disabled = input.disabled;
  if (input.quotaPerMinute !== undefined) data.quotaPerMinute = input.quotaPerMinute === null ? null : checkQuota(input.quotaPerMinute);
  return prisma.caller.update({ where: { id }, data }).catch((e) => translatePrismaError(e, { missing: `Caller "${id}" does not exist.` }));
}

export async function deleteCaller(prisma: Prisma, id: string): Promise<boolean> {
  await prisma.caller.delete({ where: { id } }).catch((e) => translatePrismaError(e, { missing: `Caller "${id}" does not exist.` }));
  return true;
}

export async function issueApiKey(prisma: Prisma, callerId: string, expiresAt?: Date | null): Promise<{ apiKey: string; key: ApiKey }> {
  const expiry = checkExpiry(expiresAt);
  const k = newApiKey();
  const key = await prisma.apiKey
    .create({ data: { id: k.id, callerId, prefix: k.prefix, hash: k.hash, expiresAt: expiry } })
    .catch((e) => translatePrismaError(e, { missing: `Caller "${callerId}" does not exist.` }));
  return { apiKey: k.key, key };
}

/** Revoking twice is harmless: the first revocation time stays. */
export async function revokeApiKey(prisma: Prisma, id: string): Promise<ApiKey> {
  await prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  const key = await prisma.apiKey.findUnique({ where: { id } });
  if (!key) throw notFound(`API key "${id}" does not exist.`);
  return key;
}

export interface GrantInput {
  callerId: string;
  tenantId: string;
  systemId?: string | null;
  methods?: HttpMethod[] | null;
  pathPrefix?: string | null;
  expiresAt?: Date | null;
}

export async function grant(prisma: Prisma, input: GrantInput): Promise<Grant> {
  if (input.methods != null && input.methods.length === 0) throw badInput('methods must list at least one method, or be left out for every method.');
  const methods = [...new Set(input.methods ?? [])];
  const pathPrefix = input.pathPrefix == null ? null : checkPlainPath('pathPrefix', input.pathPrefix);
  const expiresAt = checkExpiry(input.expiresAt);
  return prisma.$transaction(async (tx) => {
    const [caller, tenant, system] = await Promise.all([
      existsKept(tx, 'Caller', input.callerId),
      existsKept(tx, 'Tenant', input.tenantId),
      input.systemId == null ? true : existsKept(tx, 'System', input.systemId),
    ]);
    if (!caller) throw notFound(`Caller "${input.callerId}" does not exist.`);
    if (!tenant) throw notFound(`Tenant "${input.tenantId}" does not exist.`);
    if (!system) throw notFound(`System "${input.systemId}" does not exist.`);
    return tx.grant.create({
      data: { id: randomUUID(), callerId: input.callerId, tenantId: input.tenantId, systemId: input.systemId ?? null, methods, pathPrefix, expiresAt },
    });
  });
}

export async function revokeGrant(prisma: Prisma, id: string): Promise<boolean> {
  await prisma.grant.delete({ where: { id } }).catch((e) => translatePrismaError(e, { missing: `Grant "${id}" does not exist.` }));
  return true;
}

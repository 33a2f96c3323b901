// System writes: a business system, deployed per tenant (EXCLUSIVE) or shared by all (SHARED).
import type { Prisma } from '../db/database.js';
import { badInput, notFound } from '../errors.js';
import type { System } from '../generated/prisma/client.js';
import type { SystemMode } from '../generated/prisma/enums.js';
import { isReservedHeader } from '../invoke/header-rules.js';
import { translatePrismaError } from './prisma-errors.js';
import { lockForWrite } from './row-locks.js';
import { checkBaseUrl, checkHeaderName, checkId, checkIntRange, checkName, checkPlainPath } from './validate.js';

export const TIMEOUT_MS = { default: 10_000, min: 1, max: 300_000 };
export const BATCH_MAX = { default: 20, min: 1, max: 100 };

export interface SystemFields {
  name?: string | null;
  mode?: SystemMode | null;
  sharedBaseUrl?: string | null;
  tenantHeader?: string | null;
  timeoutMs?: number | null;
  batchPath?: string | null;
  batchMaxSize?: number | null;
}
export interface CreateSystem extends SystemFields {
  id: string;
  name: string;
  mode: SystemMode;
}

function checkTenantHeader(value: string): string {
  checkHeaderName('tenantHeader', value);
  if (isReservedHeader(value)) throw badInput(`tenantHeader "${value}" is a header the hub controls; choose another name.`);
  return value;
}

/** Validates the given fields; `null` clears an optional field. */
function systemData(input: SystemFields) {
  const data: Record<string, unknown> = {};
  if (input.name != null) data.name = checkName('name', input.name);
  if (input.mode != null) data.mode = input.mode;
  if (input.sharedBaseUrl !== undefined) data.sharedBaseUrl = input.sharedBaseUrl === null ? null : checkBaseUrl('sharedBaseUrl', input.sharedBaseUrl);
  if (input.tenantHeader != null) data.tenantHeader = checkTenantHeader(input.tenantHeader);
  if (input.timeoutMs != null) data.timeoutMs = checkIntRange('timeoutMs', input.timeoutMs, TIMEOUT_MS.min, TIMEOUT_MS.max);
  if (input.batchPath !== undefined) data.batchPath = input.batchPath === null ? null : checkPlainPath('batchPath', input.batchPath);
  if (input.batchMaxSize != null) data.batchMaxSize = checkIntRange('batchMaxSize', input.batchMaxSize, BATCH_MAX.min, BATCH_MAX.max);
  return data;
}

function checkModeFits(mode: SystemMode, sharedBaseUrl: string | null) {
  if (mode === 'SHARED' && !sharedBaseUrl) throw badInput('A SHARED system needs sharedBaseUrl: the one deployment all tenants use.');
  if (mode === 'EXCLUSIVE' && sharedBaseUrl) throw badInput('sharedBaseUrl is only for SHARED systems; EXCLUSIVE bindings carry their own baseUrl.');
}

export async function createSystem(prisma: Prisma, input: CreateSystem): Promise<System> {
  const id = checkId('id', input.id);
  const data = systemData(input);
  checkModeFits(input.mode, (data.sharedBaseUrl as string | null | undefined) ?? null);
  return prisma.system
    .create({ data: { ...data, id, name: data.name as string, mode: input.mode } })
    .catch((e) => translatePrismaError(e, { exists: `System "${id}" already exists.` }));
}

export async function updateSystem(prisma: Prisma, id: string, input: SystemFields): Promise<System> {
  const data = systemData(input);
  return prisma.$transaction(async (tx) => {
    // Locked first: a bindSystem reading the mode either finished, and its binding is counted
    // below, or waits and then reads the new mode.
    await lockForWrite(tx, 'System', id);
    const current = await tx.system.findUnique({ where: { id } });
    if (!current) throw notFound(`System "${id}" does not exist.`);
    const mode = (data.mode as SystemMode | undefined) ?? current.mode;
    const shared = data.sharedBaseUrl !== undefined ? (data.sharedBaseUrl as string | null) : current.sharedBaseUrl;
    checkModeFits(mode, shared);
    if (mode === 'EXCLUSIVE') {
      // Bindings that inherited the shared URL would be left without an address.
      const orphans = await tx.binding.count({ where: { systemId: id, baseUrl: null } });
      if (orphans > 0) throw badInput(`${orphans} binding(s) of "${id}" have no baseUrl of their own; give them one before making the system EXCLUSIVE.`);
    }
    return tx.system.update({ where: { id }, data });
  });
}

export async function deleteSystem(prisma: Prisma, id: string): Promise<boolean> {
  await prisma.system.delete({ where: { id } }).catch((e) => translatePrismaError(e, { missing: `System "${id}" does not exist.` }));
  return true;
}

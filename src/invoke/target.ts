// A resolved (tenant, system) pair: where to send, what to inject. Built from registry rows.
import type { Binding, System } from '../generated/prisma/client.js';
import { bindingOwner, credentialHeader, type CredentialHeader } from '../registry/credentials.js';
import { effectiveBaseUrl } from '../registry/bindings.js';
import type { SecretBox } from '../secrets/secret-box.js';

export interface Target {
  tenantId: string;
  systemId: string;
  /** scheme://host[:port] of the deployment: the unit of connection pooling */
  origin: string;
  /** the base URL's path, without a trailing slash ('' for the root) */
  basePath: string;
  /** SHARED systems only: the routing header naming the tenant */
  tenantHeader: { name: string; value: string } | null;
  credential: CredentialHeader | null;
  /** header names a caller may not send to this target */
  reservedHeaders: string[];
  timeoutMs: number;
  batchPath: string | null;
  batchMaxSize: number;
}

export function resolveTarget(box: SecretBox, system: System, binding: Binding): Target {
  const base = new URL(effectiveBaseUrl(binding, system));
  const credential = credentialHeader(box, bindingOwner(binding.tenantId, binding.systemId), binding);
  const tenantHeader = system.mode === 'SHARED' ? { name: system.tenantHeader.toLowerCase(), value: binding.tenantId } : null;
  return {
    tenantId: binding.tenantId,
    systemId: system.id,
    origin: base.origin,
    basePath: base.pathname.replace(/\/+$/, ''),
    tenantHeader,
    credential,
    reservedHeaders: [system.tenantHeader, ...(credential ? [credential.name] : [])],
    timeoutMs: system.timeoutMs,
    batchPath: system.batchPath,
    batchMaxSize: system.batchMaxSize,
  };
}

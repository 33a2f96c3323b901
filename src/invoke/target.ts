// A resolved (tenant, system) pair: where to send, what to inject. Built from registry rows.
import type { Binding, System } from '../generated/prisma/client.js';
import { bindingOwner, credentialHeader, type CredentialHeader } from '../registry/credentials.js';
import { effectiveBaseUrl } from '../registry/bindings.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { OAuth2Tokens, TokenSource } from './oauth2-tokens.js';

export interface Target {
  tenantId: string;
  systemId: string;
  /** scheme://host[:port] of the deployment: the unit of connection pooling */
  origin: string;
  /** the base URL's path, without a trailing slash ('' for the root) */
  basePath: string;
  /** SHARED systems only: the routing header naming the tenant */
  tenantHeader: { name: string; value: string } | null;
  /** the header a stored static credential gives; null for NONE and OAuth2 */
  credential: CredentialHeader | null;
  /** OAUTH2_CLIENT_CREDENTIALS: where the header comes from at call time (src/invoke/oauth2-tokens.ts) */
  oauth2: TokenSource | null;
  /** header names a caller may not send to this target */
  reservedHeaders: string[];
  timeoutMs: number;
  batchPath: string | null;
  batchMaxSize: number;
}

export function resolveTarget(box: SecretBox, system: System, binding: Binding, tokens?: OAuth2Tokens): Target {
  const base = new URL(effectiveBaseUrl(binding, system));
  const credential = credentialHeader(box, bindingOwner(binding.tenantId, binding.systemId), binding);
  let oauth2: TokenSource | null = null;
  if (binding.credentialKind === 'OAUTH2_CLIENT_CREDENTIALS') {
    if (!tokens) throw new Error('an OAuth2 binding needs the token provider');
    oauth2 = tokens.source({ tenantId: binding.tenantId, systemId: system.id, timeoutMs: system.timeoutMs, version: binding.credentialCiphertext ?? '' });
  }
  const tenantHeader = system.mode === 'SHARED' ? { name: system.tenantHeader.toLowerCase(), value: binding.tenantId } : null;
  return {
    tenantId: binding.tenantId,
    systemId: system.id,
    origin: base.origin,
    basePath: base.pathname.replace(/\/+$/, ''),
    tenantHeader,
    credential,
    oauth2,
    reservedHeaders: [system.tenantHeader, ...(credential ? [credential.name] : []), ...(oauth2 ? ['authorization'] : [])],
    timeoutMs: system.timeoutMs,
    batchPath: system.batchPath,
    batchMaxSize: system.batchMaxSize,
  };
}

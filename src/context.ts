// What every resolver gets: who asks, per-request loaders, and the process-wide services.
import type { Principal } from './access/principal.js';
import type { AuditLog } from './audit/audit-log.js';
import type { Prisma } from './db/database.js';
import type { InvokeScope, InvokeService } from './invoke/invoke-service.js';
import type { RegistryLoaders } from './registry/loaders.js';
import type { RegistryCache } from './registry/registry-cache.js';
import type { SecretBox } from './secrets/secret-box.js';

export interface Services {
  prisma: Prisma;
  box: SecretBox;
  invoker: InvokeService;
  audit: AuditLog;
  cache: RegistryCache;
}

export interface HubContext {
  principal: Principal;
  loaders: RegistryLoaders;
  invoke: InvokeScope;
  services: Services;
}

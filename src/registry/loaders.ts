// Per-request DataLoaders over the registry: every lookup of one GraphQL request is one query per
// table, results come back in key order, and nothing is cached across requests or tenants.
import DataLoader from 'dataloader';
import type { Prisma } from '../db/database.js';
import type { ApiKey, Binding, Caller, Grant, OAuthToken, System, Tenant } from '../generated/prisma/client.js';
import type { RegistryCache } from './registry-cache.js';
import { notFound } from '../errors.js';
import { isRegistryId } from './validate.js';

const SEP = '\u0000';
// Where each hot-path table's rows sit in the registry cache: the key prefix that its loader and
// its *Now lookup share.
const CACHED = { tenant: 'tenant:', system: 'system:', binding: 'binding:', grants: 'grants:' } as const;
export const bindingKey = (tenantId: string, systemId: string) => tenantId + SEP + systemId;
/** A caller's grants on one tenant: what an invoke needs, however many tenants the caller may reach. */
export const grantKey = (callerId: string, tenantId: string) => callerId + SEP + tenantId;

function byId<T extends { id: string }>(ids: readonly string[], rows: T[]): (T | null)[] {
  const map = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => map.get(id) ?? null);
}

function grouped<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): T[][] {
  const map = new Map<string, T[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = map.get(k);
    if (list) list.push(r);
    else map.set(k, [r]);
  }
  return keys.map((k) => map.get(k) ?? []);
}

/** Serves what the process cache holds and fetches only the rest, in one query. */
function throughCache<V>(cache: RegistryCache | undefined, prefix: string, fetch: (keys: readonly string[]) => Promise<V[]>) {
  if (!cache) return fetch;
  return async (keys: readonly string[]): Promise<(V | Error)[]> => {
    const out = keys.map((k) => cache.get<V>(prefix + k));
    const missing = keys.filter((_, i) => out[i] === undefined);
    if (missing.length === 0) return out as V[];
    const token = cache.begin();
    let loaded: V[];
    try {
      loaded = await fetch(missing);
    } catch (error) {
      // Database unreachable: what was known before (within the stale window) is served; a key
      // never seen gets the error, alone (DataLoader rejects only that key's load).
      const failed = error instanceof Error ? error : new Error(String(error));
      return out.map((v, i) => {
        const known = v !== undefined ? v : cache.stale<V>(prefix + keys[i]!, error);
        return known !== undefined ? known : failed; // a stale null (known absence) is served too
      });
    }
    missing.forEach((k, i) => cache.store(token, prefix + k, loaded[i]));
    let next = 0;
    return out.map((v) => (v === undefined ? loaded[next++]! : v));
  };
}

const bindingsByKey = <T extends { tenantId: string; systemId: string }>(keys: readonly string[], rows: T[]) => {
  const map = new Map(rows.map((r) => [bindingKey(r.tenantId, r.systemId), r]));
  return keys.map((k) => map.get(k) ?? null);
};
const pairsOf = (keys: readonly string[]) => keys.map((k) => k.split(SEP) as [string, string]);
/** the where clause of the rows of these bindingKeys */
const bindingsWhere = (keys: readonly string[]) => ({ OR: pairsOf(keys).map(([tenantId, systemId]) => ({ tenantId, systemId })) });

/**
 * The loaders of one request, each made on first use: a warm invoke uses four of the nine, and a
 * request paid for all nine (a DataLoader, its cache map and closures each) before.
 */
export class RegistryLoaders {
  // #private: the loaders object holds no other enumerable properties (not the Prisma client).
  readonly #prisma: Prisma;
  readonly #cache: RegistryCache | undefined;
  /**
   * @param cache the process cache for the invoke hot path (tenants, systems, bindings, grants);
   *   admin-only lists are always read from the database.
   */
  constructor(prisma: Prisma, cache?: RegistryCache) {
    this.#prisma = prisma;
    this.#cache = cache;
  }

  /**
   * The invoke hot path's lookups: the process cache's value at once when it holds a fresh one (no
   * DataLoader, no batch, no promise: a warm invoke made four loaders and dispatched four batches
   * per request for values the cache held); otherwise the loader's promise, as through the loaders.
   */
  tenantNow(id: string): Tenant | null | Promise<Tenant | null> {
    return this.#now(CACHED.tenant, id, () => this.tenant);
  }
  systemNow(id: string): System | null | Promise<System | null> {
    return this.#now(CACHED.system, id, () => this.system);
  }
  /** @param key bindingKey(tenantId, systemId) */
  bindingNow(key: string): Binding | null | Promise<Binding | null> {
    return this.#now(CACHED.binding, key, () => this.binding);
  }
  /** @param key grantKey(callerId, tenantId) */
  grantsOnTenantNow(key: string): Grant[] | Promise<Grant[]> {
    return this.#now(CACHED.grants, key, () => this.grantsOnTenant);
  }

  #now<V>(prefix: string, key: string, loader: () => DataLoader<string, V>): V | Promise<V> {
    const cached = this.#cache?.fresh<V>(prefix + key);
    return cached !== undefined ? cached : loader().load(key);
  }

  #tenant?: DataLoader<string, Tenant | null>;
  get tenant() {
    return (this.#tenant ??= new DataLoader<string, Tenant | null>(
      throughCache(this.#cache, CACHED.tenant, async (ids) => byId(ids, await this.#prisma.tenant.findMany({ where: { id: { in: [...ids] } } }))),
    ));
  }

  #system?: DataLoader<string, System | null>;
  get system() {
    return (this.#system ??= new DataLoader<string, System | null>(
      throughCache(this.#cache, CACHED.system, async (ids) => byId(ids, await this.#prisma.system.findMany({ where: { id: { in: [...ids] } } }))),
    ));
  }

  #caller?: DataLoader<string, Caller | null>;
  get caller() {
    return (this.#caller ??= new DataLoader<string, Caller | null>(async (ids) => byId(ids, await this.#prisma.caller.findMany({ where: { id: { in: [...ids] } } }))));
  }

  #binding?: DataLoader<string, Binding | null>;
  get binding() {
    return (this.#binding ??= new DataLoader<string, Binding | null>(
      throughCache(this.#cache, CACHED.binding, async (keys) =>
        bindingsByKey(keys, await this.#prisma.binding.findMany({ where: bindingsWhere(keys) })),
      ),
    ));
  }

  #oauthToken?: DataLoader<string, OAuthToken | null>;
  /** OAuth2 access token state of bindings (admin reads: never cached) */
  get oauthToken() {
    return (this.#oauthToken ??= new DataLoader<string, OAuthToken | null>(async (keys) =>
      bindingsByKey(keys, await this.#prisma.oAuthToken.findMany({ where: bindingsWhere(keys) })),
    ));
  }

  #grantsOfCaller?: DataLoader<string, Grant[]>;
  /** every grant of a caller (admin reads: never cached) */
  get grantsOfCaller() {
    return (this.#grantsOfCaller ??= new DataLoader<string, Grant[]>(async (ids) =>
      grouped(ids, await this.#prisma.grant.findMany({ where: { callerId: { in: [...ids] } }, orderBy: { createdAt: 'asc' } }), (g) => g.callerId),
    ));
  }

  #grantsOnTenant?: DataLoader<string, Grant[]>;
  /**
   * A caller's grants on one tenant (key: grantKey), cached per pair: a caller granted 100,000
   * tenants costs a cache entry per tenant it calls, not one 100,000-row entry read and
   * scanned on every invoke.
   */
  get grantsOnTenant() {
    return (this.#grantsOnTenant ??= new DataLoader<string, Grant[]>(
      throughCache(this.#cache, CACHED.grants, async (keys) => {
        // A tenant id no tenant can have (a caller's typo, or NUL and lone surrogates, which
        // PostgreSQL text cannot even hold) has no grants: no query for it.
        const pairs = pairsOf(keys).filter(([, tenantId]) => isRegistryId(tenantId));
        const rows = pairs.length ? await this.#prisma.grant.findMany({ where: { OR: pairs.map(([callerId, tenantId]) => ({ callerId, tenantId })) }, orderBy: { createdAt: 'asc' } }) : [];
        return grouped(keys, rows, (g) => grantKey(g.callerId, g.tenantId));
      }),
    ));
  }

  #apiKeysOfCaller?: DataLoader<string, ApiKey[]>;
  get apiKeysOfCaller() {
    return (this.#apiKeysOfCaller ??= new DataLoader<string, ApiKey[]>(async (ids) =>
      grouped(ids, await this.#prisma.apiKey.findMany({ where: { callerId: { in: [...ids] } }, orderBy: { createdAt: 'asc' } }), (k) => k.callerId),
    ));
  }

  #bindingsOfTenant?: DataLoader<string, Binding[]>;
  get bindingsOfTenant() {
    return (this.#bindingsOfTenant ??= new DataLoader<string, Binding[]>(async (ids) =>
      grouped(ids, await this.#prisma.binding.findMany({ where: { tenantId: { in: [...ids] } }, orderBy: { systemId: 'asc' } }), (b) => b.tenantId),
    ));
  }

  #bindingsOfSystem?: DataLoader<string, Binding[]>;
  get bindingsOfSystem() {
    return (this.#bindingsOfSystem ??= new DataLoader<string, Binding[]>(async (ids) =>
      grouped(ids, await this.#prisma.binding.findMany({ where: { systemId: { in: [...ids] } }, orderBy: { tenantId: 'asc' } }), (b) => b.systemId),
    ));
  }
}

/** A row that must exist (a parent's foreign key points at it): NOT_FOUND if it was deleted meanwhile. */
export async function loadExisting<T>(loader: DataLoader<string, T | null>, id: string, what: string): Promise<T> {
  const row = await loader.load(id);
  if (!row) throw notFound(`${what} "${id}" does not exist.`);
  return row;
}

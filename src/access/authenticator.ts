// Turns an Authorization header into a Principal, or refuses with UNAUTHENTICATED.
import { HubError } from '../errors.js';
import type { Prisma } from '../db/database.js';
import type { Logger } from '../log.js';
import { hashApiKey, KEY_PREFIX } from './api-keys.js';
import type { Principal } from './principal.js';
import { RateLimiter, type Limiter } from './rate-limiter.js';
import type { RegistryCache } from '../registry/registry-cache.js';

// lastUsedAt is informational: one write per key per minute at most, never on the request's path.
const LAST_USED_RESOLUTION_MS = 60_000;

export class Authenticator {
  private readonly lastWritten = new Map<string, number>();

  constructor(
    private readonly prisma: Prisma,
    private readonly log: Logger,
    /** failed attempts per client address per minute before it is slowed down */
    private readonly failuresPerMinute = 20,
    /** keys (and known-unknown keys) are served from here on warm requests */
    private readonly cache?: RegistryCache,
    /** failed attempts per client address: shared through Redis when the hub has it */
    private readonly failures: Limiter = new RateLimiter(60_000),
  ) {}

  /**
   * @param client the client's address: repeated failures from it are answered with
   *   RATE_LIMITED (valid keys included, so guessing learns nothing) while other clients go on.
   */
  async authenticate(authorization: string | null, client = 'unknown'): Promise<Principal> {
    const verdict = this.failures.check(client, this.failuresPerMinute);
    // The in-process limiter answers at once: no await (a microtask per request) for it.
    const blocked = verdict instanceof Promise ? await verdict : verdict;
    if (!blocked.allowed) {
      throw new HubError('RATE_LIMITED', 'Too many failed authentications from this client; retry later.', {
        retryAfterMs: blocked.retryAfterMs,
        http: { status: 429, headers: { 'retry-after': String(Math.ceil(blocked.retryAfterMs / 1000)) } },
      });
    }
    try {
      return await this.verify(authorization);
    } catch (error) {
      if (error instanceof HubError && error.code === 'UNAUTHENTICATED') {
        await this.failures.hit(client, Number.POSITIVE_INFINITY);
        this.log.warn('authentication failed', { client });
      }
      throw error;
    }
  }

  private async verify(authorization: string | null): Promise<Principal> {
    const key = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!key) throw unauthenticated('Send an API key as "Authorization: Bearer <key>".');
    // Cheap shape check before any database work; the hash lookup decides.
    if (key.length > 256 || (!key.startsWith(KEY_PREFIX) && key.length < 32)) throw unauthenticated();
    const hash = hashApiKey(key);
    const find = () =>
      this.prisma.apiKey.findUnique({
        relationLoadStrategy: 'join',
        where: { hash },
        include: { caller: { include: { tenant: { select: { disabled: true } } } } },
      });
    // A warm key straight from the cache; otherwise through load(), which counts the miss and
    // serves a known key stale while the database is unreachable.
    const cacheKey = `key:${hash}`;
    const cached = this.cache?.fresh<Awaited<ReturnType<typeof find>>>(cacheKey);
    const row = cached !== undefined ? cached : this.cache ? await this.cache.load(cacheKey, find) : await find();
    const now = Date.now();
    if (!row || row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= now)) throw unauthenticated();
    this.touch(row.id, now);
    return {
      role: row.caller.role,
      callerId: row.callerId,
      tenantId: row.caller.tenantId,
      apiKeyId: row.id,
      disabled: row.caller.disabled || Boolean(row.caller.tenant?.disabled),
      quotaPerMinute: row.caller.quotaPerMinute,
    };
  }

  private touch(keyId: string, now: number) {
    const last = this.lastWritten.get(keyId) ?? 0;
    if (now - last < LAST_USED_RESOLUTION_MS) return;
    this.lastWritten.set(keyId, now);
    this.prisma.apiKey
      .update({ where: { id: keyId }, data: { lastUsedAt: new Date(now) } })
      .catch((error: unknown) => this.log.debug('lastUsedAt not updated', { error }));
  }
}

function unauthenticated(message = 'The API key is missing, unknown, revoked or expired.') {
  return new HubError('UNAUTHENTICATED', message, { http: { status: 401 } });
}

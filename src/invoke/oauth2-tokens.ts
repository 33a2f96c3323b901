// Access tokens of OAUTH2_CLIENT_CREDENTIALS bindings (RFC 6749 4.4): obtained from the binding's
// token endpoint, stored encrypted in OAuthToken with their expiry, refreshed ahead of expiry, and
// refreshed once at a time per binding, as Nango does for its connections:
// - in this process, concurrent callers share one refresh (one promise per binding);
// - across hub processes on one PostgreSQL, the refresh runs in a transaction (READ COMMITTED, as
//   all the hub's: src/db/isolation.ts) that holds an advisory lock on the binding and RE-READS the
//   stored token after taking it: a process that waited finds the token the first one stored and
//   does not call the endpoint again;
// - on the embedded PGlite (one process, one connection) no transaction is held open across the
//   HTTP call, which would stall every other query of the hub; the in-process single flight is
//   all the serialisation there is to do.
// A failing endpoint is recorded (failures, lastError in the hub's words, cooldownUntil with an
// exponential backoff); during the cooldown a still-valid token is used, else UPSTREAM_AUTH_FAILED
// comes at once, without calling the endpoint.
import { createHash } from 'node:crypto';
import type { Prisma } from '../db/database.js';
import { HubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubMetrics } from '../observability/metrics.js';
import { accessTokenOwner, bindingOwner, openOAuth2Client, type CredentialHeader, type OAuth2Client } from '../registry/credentials.js';
import { bindingKey } from '../registry/loaders.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { UpstreamClient } from './upstream-client.js';

export interface OAuth2Settings {
  refreshSkewMs: number;
  cooldownMs: number;
  cooldownMaxMs: number;
  defaultExpiresInS: number;
}

/** The binding a token is for, as a resolved target knows it. */
export interface OAuth2Target {
  tenantId: string;
  systemId: string;
  /** the deadline of a token request: the system's timeoutMs */
  timeoutMs: number;
  /** the binding's sealed credential: a new credential (even the same client again) is a new version */
  version: string;
}

/** What a target holds: its binding's credential header, obtained when needed. */
export interface TokenSource {
  /** @param opts.rejected a token the called system refused: get a newer one unless someone already did */
  header(opts?: { rejected?: string }): Promise<CredentialHeader>;
}

interface TokenState {
  version: string;
  token: string | null;
  /** epoch ms; 0 when there is no token */
  expiresAt: number;
  refreshedAt: number;
  cooldownUntil: number;
  lastError: string | null;
}

type Db = Pick<Prisma, 'oAuthToken' | '$queryRawUnsafe'>;

interface BindingRow {
  kind: string;
  ciphertext: string | null;
  keyId: string | null;
}

/** What one token request changes in the OAuthToken row. */
interface TokenColumns {
  ciphertext?: string;
  keyId?: string;
  expiresAt?: Date;
  refreshedAt?: Date;
  failures: number;
  cooldownUntil: Date | null;
  lastError: string | null;
}

/** A token endpoint failure; reason is in the hub's words (never the endpoint's body). */
class TokenEndpointError extends Error {}

/** A 401 renews a binding's token at most once per this pause. */
const REJECTED_RENEWAL_PAUSE_MS = 5_000;
/** expires_in outside this range (seconds) is an invalid answer: 0 would mean a refresh per call. */
const EXPIRES_IN_RANGE = { min: 1, max: 10 * 365 * 24 * 3600 };

// pg_advisory_xact_lock(class, key): the class keeps these locks apart from the hub's other ones.
// Exported for a test.
export const LOCK_CLASS = 72_470_010;
export const lockKey = (tenantId: string, systemId: string) => createHash('sha256').update(bindingKey(tenantId, systemId)).digest().readInt32BE(0);

export class OAuth2Tokens {
  private readonly states = new Map<string, TokenState>();
  private readonly inflight = new Map<string, Promise<TokenState>>();
  /** the token a 401 last renewed a binding's token to, and when (one entry per OAuth2 binding used) */
  private readonly renewedOnRejection = new Map<string, { token: string; at: number }>();
  /** PostgreSQL refreshes hold a pool connection across the token request: at most this many at once */
  private readonly maxLocked: number;
  private locked = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly deps: {
      prisma: Prisma;
      /** which database: decides how refreshes are serialised across processes */
      kind: 'pglite' | 'postgres';
      box: SecretBox;
      client: UpstreamClient;
      log: Logger;
      settings: OAuth2Settings;
      metrics?: HubMetrics;
      /** the database pool's size: refreshes may take at most half of it (default 10) */
      poolSize?: number;
    },
  ) {
    this.maxLocked = Math.max(1, Math.floor((deps.poolSize ?? 10) / 2));
  }

  /** The token source a resolved target carries. */
  source(target: OAuth2Target): TokenSource {
    return { header: (opts) => this.header(target, opts) };
  }

  async header(target: OAuth2Target, opts: { rejected?: string } = {}): Promise<CredentialHeader> {
    const key = bindingKey(target.tenantId, target.systemId);
    const began = Date.now();
    const known = this.states.get(key);
    if (known && known.version === target.version) {
      if (known.token && known.token !== opts.rejected && began < known.expiresAt) {
        // Due for renewal but still valid: renew in the background and answer with the token we
        // have, so a slow token endpoint never holds up (or times out) a call that needs no wait.
        if (began >= this.refreshAt(known) && began >= known.cooldownUntil) {
          this.obtain(key, target, undefined, began).catch((error: unknown) =>
            this.deps.log.warn('background token refresh failed', { tenantId: target.tenantId, systemId: target.systemId, error }),
          );
        }
        return bearer(known.token);
      }
      if (began < known.cooldownUntil) {
        if (usable(known, began, opts.rejected)) return bearer(known.token!);
        throw this.failure(target, known, began);
      }
      // A 401 renews the token at most once per pause: a called system that rejects good tokens
      // (wrong audience or scope) would otherwise make every call ask the endpoint again. Within
      // the pause the retry carries the same token and its 401 stands.
      const renewed = this.renewedOnRejection.get(key);
      if (opts.rejected && renewed?.token === opts.rejected && began < known.expiresAt && began - renewed.at < REJECTED_RENEWAL_PAUSE_MS) {
        return bearer(opts.rejected);
      }
    }
    let state = await this.obtain(key, target, opts.rejected, began);
    // A token belongs to one credential: never one of another client, nor one for another address.
    // Joined a refresh that began before the credential changed: once more, with what is stored now.
    if (state.version !== target.version) state = await this.obtain(key, target, opts.rejected, began);
    // Still another credential: this call's target was resolved before the change.
    if (state.version !== target.version) {
      throw new HubError('UPSTREAM_AUTH_FAILED', `The credential of system "${target.systemId}" for tenant "${target.tenantId}" changed during this call; retry.`);
    }
    const now = Date.now();
    if (opts.rejected && state.token && state.token !== opts.rejected) this.renewedOnRejection.set(key, { token: state.token, at: now });
    // A token refreshed during this call is taken even if it equals the rejected one (some
    // endpoints hand out the same token until it expires): the retry's answer then stands.
    if (usable(state, now, opts.rejected) || (state.token && now < state.expiresAt && state.refreshedAt >= began)) return bearer(state.token!);
    throw this.failure(target, state, now);
  }

  /** One refresh per binding at a time: later callers wait for the running one. */
  private async obtain(key: string, target: OAuth2Target, rejected: string | undefined, began: number): Promise<TokenState> {
    const running = this.inflight.get(key);
    if (running) {
      const state = await running;
      if (!rejected || state.token !== rejected || state.refreshedAt >= began) return state;
      // The refresh we joined kept the token that was just refused: one more, told so.
    }
    let next = this.inflight.get(key);
    if (!next) {
      next = this.refresh(target, rejected)
        .then((state) => {
          this.states.set(key, state);
          return state;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, next);
    }
    return next;
  }

  private async refresh(target: OAuth2Target, rejected: string | undefined): Promise<TokenState> {
    const { prisma, kind } = this.deps;
    if (kind === 'pglite') return this.refreshWith(prisma, target, rejected, false);
    // The lock is held across the token request: bound the wait for it and the transaction.
    const lockWaitMs = target.timeoutMs + 10_000;
    // Many bindings refreshing at once (one identity provider hanging) must not take every pool
    // connection from audit writes, lookups and /readyz.
    while (this.locked >= this.maxLocked) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.locked++;
    try {
      return await prisma.$transaction(
        async (tx) => {
          await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = ${lockWaitMs}`);
          await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${lockKey(target.tenantId, target.systemId)})`);
          return this.refreshWith(tx, target, rejected, true);
        },
        { maxWait: 10_000, timeout: lockWaitMs + target.timeoutMs + 10_000 },
      );
    } catch (error) {
      if (/55P03|lock timeout/i.test(String((error as Error)?.message ?? ''))) {
        throw new HubError('UPSTREAM_AUTH_FAILED', `Another hub process is still refreshing the token of system "${target.systemId}" for tenant "${target.tenantId}"; retry.`);
      }
      throw error;
    } finally {
      this.locked--;
      this.waiting.shift()?.();
    }
  }

  /**
   * Reads the binding and its stored token, and calls the token endpoint only if the stored token
   * is missing, due for refresh, or the one a called system just refused.
   * @param locked true inside the PostgreSQL transaction holding the binding's lock
   */
  private async refreshWith(db: Db, target: OAuth2Target, rejected: string | undefined, locked: boolean): Promise<TokenState> {
    const { tenantId, systemId } = target;
    // FOR SHARE: a credential change (bindSystem, setCredential) waits until this refresh is
    // stored, and then deletes its token; it cannot slip in between.
    const binding = await readBinding(db, tenantId, systemId, locked ? ' FOR SHARE' : '');
    if (!binding || binding.kind !== 'OAUTH2_CLIENT_CREDENTIALS' || !binding.ciphertext) {
      throw new HubError('UPSTREAM_AUTH_FAILED', `The binding of system "${systemId}" to tenant "${tenantId}" has no OAuth2 credential any more; retry.`);
    }
    const row = await db.oAuthToken.findUnique({ where: { tenantId_systemId: { tenantId, systemId } } });
    const stored = this.stateOf(binding.ciphertext, target, row);
    const now = Date.now();
    if (stored.token && stored.token !== rejected && now < this.refreshAt(stored)) return stored;
    if (now < stored.cooldownUntil) return stored;

    const client = openOAuth2Client(this.deps.box, bindingOwner(tenantId, systemId), { credentialCiphertext: binding.ciphertext, credentialKeyId: binding.keyId });
    let next: TokenState;
    let data: TokenColumns;
    try {
      const got = await this.request(client, target.timeoutMs);
      const refreshedAt = Date.now();
      const expiresAt = refreshedAt + got.expiresInS * 1000;
      const sealed = this.deps.box.seal(got.token, accessTokenOwner(tenantId, systemId));
      next = { version: binding.ciphertext, token: got.token, expiresAt, refreshedAt, cooldownUntil: 0, lastError: null };
      data = { ciphertext: sealed.ciphertext, keyId: sealed.keyId, expiresAt: new Date(expiresAt), refreshedAt: new Date(refreshedAt), failures: 0, cooldownUntil: null, lastError: null };
      this.deps.metrics?.tokenRefreshes.inc({ outcome: 'ok' });
      this.deps.log.debug('access token obtained', { tenantId, systemId, expiresInS: got.expiresInS });
    } catch (error) {
      if (!(error instanceof TokenEndpointError)) throw error;
      const failures = (row?.failures ?? 0) + 1;
      const pauseMs = Math.min(this.deps.settings.cooldownMs * 2 ** Math.min(failures - 1, 30), this.deps.settings.cooldownMaxMs);
      const cooldownUntil = Date.now() + pauseMs;
      next = { ...stored, cooldownUntil, lastError: error.message };
      data = { failures, cooldownUntil: new Date(cooldownUntil), lastError: error.message };
      this.deps.metrics?.tokenRefreshes.inc({ outcome: 'failed' });
      this.deps.log.warn('token request failed', { tenantId, systemId, reason: error.message, failures, cooldownMs: pauseMs });
    }
    const write = async (w: Db) => {
      await w.oAuthToken.upsert({ where: { tenantId_systemId: { tenantId, systemId } }, create: { tenantId, systemId, ...data }, update: data });
    };
    if (locked) {
      await write(db);
    } else {
      // PGlite: the binding may have been given a new credential during the request; a token of
      // the old client is then not stored (its transaction deleted the old token already).
      await this.deps.prisma.$transaction(async (tx) => {
        const now = await readBinding(tx, tenantId, systemId, '');
        if (now?.ciphertext === binding.ciphertext) await write(tx);
      });
    }
    return next;
  }

  /** POST tokenUrl, grant_type=client_credentials, client_secret_basic (RFC 6749 2.3.1, 4.4). */
  private async request(client: OAuth2Client, timeoutMs: number): Promise<{ token: string; expiresInS: number }> {
    const url = new URL(client.tokenUrl);
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (client.scope) form.set('scope', client.scope);
    const basic = Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString('base64');
    let res;
    try {
      res = await this.deps.client.send({
        origin: url.origin,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', authorization: `Basic ${basic}` },
        body: form.toString(),
        timeoutMs,
      });
    } catch (error) {
      const code = error instanceof HubError ? error.code : 'UPSTREAM_UNREACHABLE';
      if (code === 'UPSTREAM_TIMEOUT') throw new TokenEndpointError(`token endpoint did not answer within ${timeoutMs} ms`);
      if (code === 'UPSTREAM_RESPONSE_TOO_LARGE') throw new TokenEndpointError('token endpoint answer too large');
      if (code === 'UPSTREAM_UNREACHABLE') throw new TokenEndpointError('token endpoint unreachable');
      throw new TokenEndpointError(`token endpoint call failed (${code})`);
    }
    if (res.status < 200 || res.status > 299) throw new TokenEndpointError(`token endpoint answered ${res.status}`);
    let answer: unknown;
    try {
      answer = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new TokenEndpointError('token endpoint answer is not JSON');
    }
    if (!answer || typeof answer !== 'object' || Array.isArray(answer)) throw new TokenEndpointError('token endpoint answer is not a JSON object');
    const { access_token: token, token_type: type, expires_in: expiresIn } = answer as Record<string, unknown>;
    if (typeof token !== 'string' || token === '') throw new TokenEndpointError('token endpoint answer has no access_token');
    // Visible ASCII only: a token with CR, LF or spaces could not be sent safely in a header.
    if (token.length > 16_384 || !/^[\x21-\x7e]+$/.test(token)) throw new TokenEndpointError('token endpoint answered an access token that cannot be sent in a header');
    // token_type is case-insensitive (RFC 6749 5.1); an answer without one is taken as bearer.
    if (type !== undefined && (typeof type !== 'string' || type.toLowerCase() !== 'bearer')) {
      throw new TokenEndpointError('token endpoint answered a token type other than bearer');
    }
    let expiresInS = this.deps.settings.defaultExpiresInS;
    if (expiresIn !== undefined && expiresIn !== null) {
      const n = typeof expiresIn === 'string' && expiresIn.trim() !== '' ? Number(expiresIn) : expiresIn;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < EXPIRES_IN_RANGE.min || n > EXPIRES_IN_RANGE.max) {
        throw new TokenEndpointError('token endpoint answered an invalid expires_in');
      }
      expiresInS = n;
    }
    return { token, expiresInS };
  }

  /** When a token is due: refreshSkewMs before it expires, but not before half its lifetime. */
  private refreshAt(s: TokenState): number {
    const lifetime = Math.max(0, s.expiresAt - s.refreshedAt);
    return s.expiresAt - Math.min(this.deps.settings.refreshSkewMs, lifetime / 2);
  }

  private stateOf(version: string, target: OAuth2Target, row: Awaited<ReturnType<Prisma['oAuthToken']['findUnique']>>): TokenState {
    let token: string | null = null;
    if (row?.ciphertext && row.keyId) {
      try {
        token = this.deps.box.open({ keyId: row.keyId, ciphertext: row.ciphertext }, accessTokenOwner(target.tenantId, target.systemId));
      } catch {
        // e.g. sealed with a key that is gone: the token is only a cache of the endpoint's answer.
        this.deps.log.warn('stored access token could not be decrypted; obtaining a new one', { tenantId: target.tenantId, systemId: target.systemId });
      }
    }
    return {
      version,
      token,
      expiresAt: token ? (row?.expiresAt?.getTime() ?? 0) : 0,
      refreshedAt: row?.refreshedAt?.getTime() ?? 0,
      cooldownUntil: row?.cooldownUntil?.getTime() ?? 0,
      lastError: row?.lastError ?? null,
    };
  }

  private failure(target: OAuth2Target, s: TokenState, now: number): HubError {
    const why = s.lastError ?? 'no valid access token';
    const extensions = s.cooldownUntil > now ? { retryAfterMs: s.cooldownUntil - now } : {};
    return new HubError('UPSTREAM_AUTH_FAILED', `No access token for system "${target.systemId}" of tenant "${target.tenantId}": ${why}.`, extensions);
  }
}

const bearer = (token: string): CredentialHeader => ({ name: 'authorization', value: `Bearer ${token}`, secret: token });

const usable = (s: TokenState, now: number, rejected: string | undefined) => !!s.token && s.token !== rejected && now < s.expiresAt;

/** application/x-www-form-urlencoded, as RFC 6749 2.3.1 asks for the client id and secret. */
const formEncode = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);

async function readBinding(db: Db, tenantId: string, systemId: string, lock: '' | ' FOR SHARE'): Promise<BindingRow | null> {
  const rows = await db.$queryRawUnsafe<BindingRow[]>(
    `SELECT "credentialKind"::text AS kind, "credentialCiphertext" AS ciphertext, "credentialKeyId" AS "keyId"
       FROM "Binding" WHERE "tenantId" = $1 AND "systemId" = $2${lock}`,
    tenantId,
    systemId,
  );
  return rows[0] ?? null;
}

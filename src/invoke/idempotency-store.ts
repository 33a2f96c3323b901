// Idempotency keys: the first invoke with a (caller, key) runs; its answer is kept, encrypted, for
// ttlMs; a repeat with the same parameters is answered from it without a second upstream call,
// also by another hub process on the same database. The database row is the lock: whoever inserts
// it runs the call, everyone else replays, waits for it, or is refused (other parameters).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Prisma } from '../db/database.js';
import { badInput, HubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { InvokeResult, PreparedCall } from './send.js';

export interface IdempotencyStoreOptions {
  prisma: Prisma;
  box: SecretBox;
  log: Logger;
  /** how long a stored answer is replayed (HUB_IDEMPOTENCY_TTL_MS) */
  ttlMs: number;
}

export type ReplayableResult = InvokeResult & { replayed?: boolean };

/** A row this process inserted and now owns; createdAt tells it apart from a later claim of the same key. */
interface Claim {
  callerId: string;
  key: string;
  createdAt: Date;
}

export type Begin = { kind: 'claimed'; claim: Claim } | { kind: 'stored'; result: InvokeResult };

/**
 * A claim outlives the call it guards by this much. Only a claim left behind by a process that
 * died mid-call ever reaches it; after it, a retry may run the call again.
 */
const LEASE_MARGIN_MS = 60_000;
/** A duplicate waits for the first call at most the system's timeoutMs plus this. */
const WAIT_MARGIN_MS = 5_000;
const FIRST_POLL_MS = 20;
const MAX_POLL_MS = 500;
/** Expired rows are deleted at most this often per process, at most PURGE_BATCH at a time. */
const PURGE_EVERY_MS = 60_000;
const PURGE_BATCH = 1000;

/** 5xx and 429 say "try again": those answers are not kept, so the caller's retry runs again. */
export const isStorable = (status: number) => status < 500 && status !== 429;

export class IdempotencyStore {
  private lastPurge = 0;
  /** claims this process holds: duplicates sent to this process wait on these instead of polling */
  private readonly held = new Map<string, Promise<void>>();

  constructor(private readonly opts: IdempotencyStoreOptions) {}

  /** SHA-256 over the call as the hub will send it (target, method, path and query, caller headers, body). */
  fingerprint(call: PreparedCall): string {
    const headers = Object.entries(call.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const canonical = JSON.stringify([call.target.tenantId, call.target.systemId, call.method, call.pathAndQuery, headers, call.body ?? null]);
    return createHash('sha256').update(canonical).digest('hex');
  }

  /**
   * Runs execute() once per (callerId, key): the first call executes and its answer is stored;
   * repeats get the stored answer with replayed: true.
   */
  async run(callerId: string, call: PreparedCall, execute: () => Promise<InvokeResult>): Promise<ReplayableResult> {
    const key = call.idempotencyKey!;
    const begun = await this.begin(callerId, key, this.fingerprint(call), call.target.timeoutMs);
    if (begun.kind === 'stored') {
      this.opts.log.debug('idempotent replay', { callerId, requestId: begun.result.requestId });
      return { ...begun.result, replayed: true };
    }
    const { claim } = begun;
    const local = holdKey(callerId, key);
    let done!: () => void;
    this.held.set(local, new Promise<void>((resolve) => (done = resolve)));
    try {
      let result: InvokeResult;
      try {
        result = await execute();
      } catch (error) {
        // A hub error (timeout, unreachable, ...) is not an answer: the retry runs again.
        await this.release(claim).catch((e: unknown) => this.opts.log.warn('idempotency claim not released', { error: e }));
        throw error;
      }
      // The caller gets its answer even when keeping it fails; a retry then waits out the claim.
      await (isStorable(result.status) ? this.complete(claim, result) : this.release(claim)).catch((error: unknown) =>
        this.opts.log.warn('idempotent answer not stored', { error }),
      );
      return result;
    } finally {
      this.held.delete(local);
      done();
    }
  }

  /**
   * Claims (callerId, key), or returns its stored answer, or waits while another call with the
   * same key is in flight. Other parameters under the same key: BAD_USER_INPUT.
   */
  async begin(callerId: string, key: string, fingerprint: string, timeoutMs: number): Promise<Begin> {
    this.purgeNowAndThen();
    const { prisma } = this.opts;
    const deadline = Date.now() + timeoutMs + WAIT_MARGIN_MS;
    const leaseMs = timeoutMs + LEASE_MARGIN_MS;
    let pause = FIRST_POLL_MS;
    for (;;) {
      // The insert is the lock, across processes; an expired row (an old answer, or a claim whose
      // process died) is taken over in the same statement.
      const [claimed] = await prisma.$queryRaw<{ createdAt: Date }[]>`
        INSERT INTO "IdempotencyRecord" ("callerId", "key", "fingerprint", "createdAt", "expiresAt")
        VALUES (${callerId}, ${key}, ${fingerprint}, now(), now() + interval '1 millisecond' * ${leaseMs}::float8)
        ON CONFLICT ("callerId", "key") DO UPDATE
          SET "fingerprint" = EXCLUDED."fingerprint", "ciphertext" = NULL, "keyId" = NULL,
              "createdAt" = EXCLUDED."createdAt", "expiresAt" = EXCLUDED."expiresAt"
          WHERE "IdempotencyRecord"."expiresAt" <= now()
        RETURNING "createdAt"`;
      if (claimed) return { kind: 'claimed', claim: { callerId, key, createdAt: claimed.createdAt } };

      const [row] = await prisma.$queryRaw<{ fingerprint: string; ciphertext: string | null; keyId: string | null; leftMs: number }[]>`
        SELECT "fingerprint", "ciphertext", "keyId", (extract(epoch FROM "expiresAt" - now()) * 1000)::float8 AS "leftMs"
        FROM "IdempotencyRecord" WHERE "callerId" = ${callerId} AND "key" = ${key}`;
      const live = row !== undefined && row.leftMs > 0;
      if (live && row.fingerprint !== fingerprint) throw badInput('params.idempotencyKey was already used with other parameters.');
      if (live && row.ciphertext !== null) return { kind: 'stored', result: this.open(callerId, key, row.ciphertext, row.keyId) };

      if (!live) continue; // released or expired just now: the next round claims it
      // In flight elsewhere: wait for its answer, bounded.
      const waitMs = deadline - Date.now();
      if (waitMs <= 0) {
        throw new HubError('UPSTREAM_TIMEOUT', 'A call with this idempotencyKey is still in progress; retry later with the same key.', {
          reason: 'idempotency_in_flight',
          retryAfterMs: Math.max(1000, Math.ceil(row.leftMs)),
        });
      }
      const local = this.held.get(holdKey(callerId, key));
      if (local) await Promise.race([local, sleep(waitMs)]);
      else await sleep(Math.min(pause, waitMs));
      pause = Math.min(pause * 2, MAX_POLL_MS);
    }
  }

  /** Keeps the answer for ttlMs, if the claim is still this call's. */
  async complete(claim: Claim, result: InvokeResult): Promise<void> {
    const { status, ok, headers, data, durationMs, requestId } = result;
    const sealed = this.opts.box.seal(JSON.stringify({ status, ok, headers, data, durationMs, requestId }), owner(claim.callerId, claim.key));
    await this.opts.prisma.$executeRaw`
      UPDATE "IdempotencyRecord"
      SET "ciphertext" = ${sealed.ciphertext}, "keyId" = ${sealed.keyId}, "expiresAt" = now() + interval '1 millisecond' * ${this.opts.ttlMs}::float8
      WHERE "callerId" = ${claim.callerId} AND "key" = ${claim.key} AND "createdAt" = ${claim.createdAt} AND "ciphertext" IS NULL`;
  }

  /** Gives the key back: the next call with it runs again. */
  async release(claim: Claim): Promise<void> {
    await this.opts.prisma.$executeRaw`
      DELETE FROM "IdempotencyRecord"
      WHERE "callerId" = ${claim.callerId} AND "key" = ${claim.key} AND "createdAt" = ${claim.createdAt} AND "ciphertext" IS NULL`;
  }

  private open(callerId: string, key: string, ciphertext: string, keyId: string | null): InvokeResult {
    try {
      return JSON.parse(this.opts.box.open({ ciphertext, keyId: keyId ?? '' }, owner(callerId, key))) as InvokeResult;
    } catch {
      // Not "run it again": the first call did happen. Refuse, masked; details in the log.
      throw new HubError('INTERNAL_SERVER_ERROR', 'A stored idempotent answer could not be opened.', { reason: 'idempotency_decrypt' });
    }
  }

  /** Expired rows are ignored by begin(); this only keeps the table small. Off the request's path. */
  private purgeNowAndThen() {
    const now = Date.now();
    if (now - this.lastPurge < Math.min(this.opts.ttlMs, PURGE_EVERY_MS)) return;
    this.lastPurge = now;
    this.opts.prisma.$executeRaw`
      DELETE FROM "IdempotencyRecord" WHERE ("callerId", "key") IN (
        SELECT "callerId", "key" FROM "IdempotencyRecord" WHERE "expiresAt" <= now() ORDER BY "expiresAt" LIMIT ${PURGE_BATCH})`.then(
      (purged) => purged > 0 && this.opts.log.debug('expired idempotency records purged', { purged }),
      (error: unknown) => this.opts.log.debug('idempotency purge skipped', { error }),
    );
  }
}

const holdKey = (callerId: string, key: string) => `${callerId}\u0000${key}`;
// Caller ids cannot contain '/', so the associated data names exactly one (caller, key): a stored
// answer copied to another caller's row does not open there.
export const idempotencyOwner = (callerId: string, key: string) => `idempotency:${callerId}/${key}`;
const owner = idempotencyOwner;

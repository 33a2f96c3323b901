// invoke(tenantId, systemId, params): authorize the caller, resolve the tenant's deployment of the
// system, build the second request, send it, answer, and leave one invocation record, refused or not.
import { performance } from 'node:perf_hooks';
import { randomUuid, timeOrderedUuid } from '../utils/random-uuid.js';
import { grantCovers } from '../access/grants.js';
import { RateLimiter, type Limiter, type Verdict } from '../access/rate-limiter.js';
import { isAdmin, type Principal } from '../access/principal.js';
import type { AuditLog } from '../audit/audit-log.js';
import { badInput, forbidden, HubError, notFound } from '../errors.js';
import type { Binding, Grant, System, Tenant } from '../generated/prisma/client.js';
import type { HttpMethod } from '../generated/prisma/enums.js';
import type { Logger } from '../log.js';
import { bindingKey, grantKey, type RegistryLoaders } from '../registry/loaders.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { CallDispatcher } from './call-dispatcher.js';
import type { IdempotencyStore } from './idempotency-store.js';
import { checkCallerHeaders } from './header-rules.js';
import { checkPath } from './path-rules.js';
import { encodeQuery } from './query-string.js';
import { SAFE_METHODS, sendOne, type InvokeResult, type PreparedCall } from './send.js';
import { resolveTarget, type Target } from './target.js';
import type { UpstreamExchange } from './exchange.js';
import type { TraceContext } from './traceparent.js';
import type { OAuth2Tokens } from './oauth2-tokens.js';
import { isDatabaseUnavailable } from '../utils/database-errors.js';

export interface InvokeParams {
  method?: HttpMethod | null;
  path: string;
  query?: unknown;
  headers?: unknown;
  body?: unknown;
  idempotencyKey?: string | null;
}

export interface InvokeArgs {
  tenantId: string;
  systemId: string;
  params: InvokeParams;
}

/** What one GraphQL request brings: who asks, its loaders, its call dispatcher. */
export interface InvokeScope {
  principal: Principal;
  loaders: RegistryLoaders;
  dispatcher: CallDispatcher;
  /** targets resolved (and credentials opened) once per request */
  targets: Map<string, Target | Promise<Target>>;
  /** the incoming request's W3C trace, continued in every call it makes */
  trace: TraceContext;
}

const MAX_BODY = 1024 * 1024;
const clip = (s: string, n: number) => (s.length > n ? s.slice(0, n) : s);
// Caller-chosen text in a record is escaped like JSON: NUL and lone surrogates, which PostgreSQL
// text cannot hold, never reach the database and cannot wedge the audit writer.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/; // printable ASCII but " and \: nothing to escape
const storable = (s: unknown, n: number) => {
  const text = String(s);
  if (PLAIN.test(text)) return clip(text, n);
  const escaped = clip(JSON.stringify(text).slice(1, -1), n);
  // The limit may fall inside a surrogate pair (an emoji): its lone first half would be stored as
  // U+FFFD, not as the text the record's hash covers, and the chain would no longer verify.
  const last = escaped.charCodeAt(escaped.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? escaped.slice(0, -1) : escaped;
};

export class InvokeService {
  private readonly quota: Limiter;

  constructor(
    private readonly deps: {
      exchange: UpstreamExchange;
      box: SecretBox;
      audit: AuditLog;
      log: Logger;
      quotaPerMinute: number;
      cache?: RegistryCache;
      metrics?: HubMetrics;
      idempotency?: IdempotencyStore;
      /** access tokens of OAuth2 bindings */
      tokens?: OAuth2Tokens;
      /** invokes per caller per minute: shared through Redis when the hub has it */
      quota?: Limiter;
    },
  ) {
    // without a shared limiter, this process's own counters
    this.quota = deps.quota ?? new RateLimiter(60_000);
  }

  /** Query.invoke: safe methods only, deduplicated and batched within the request. */
  invokeQuery(scope: InvokeScope, args: InvokeArgs): Promise<InvokeResult> {
    return this.invoke(scope, args, 'query');
  }

  /** Mutation.invoke: any method, sent on its own, never deduplicated. */
  invokeMutation(scope: InvokeScope, args: InvokeArgs): Promise<InvokeResult> {
    return this.invoke(scope, args, 'mutation');
  }

  // Not async: a warm field (registry, grant and quota answered from memory) is prepared at once
  // and waits on one promise only, its call's; the bookkeeping runs in that promise's reactions.
  // An async function here cost each field of a document its own suspended frame and promises.
  private invoke(scope: InvokeScope, args: InvokeArgs, mode: 'query' | 'mutation'): Promise<InvokeResult> {
    const start = performance.now();
    const method = args.params.method ?? 'GET';
    const requestId = randomUuid();
    // What a refused or failed field rejects with, once its failure is logged and recorded.
    const failed = (caught: unknown, call: PreparedCall | undefined): unknown => {
      const error = isDatabaseUnavailable(caught) ? new HubError('SERVICE_UNAVAILABLE', 'The hub cannot reach its database; retry later.') : caught;
      const failure = error instanceof HubError ? error : undefined;
      let rejection = error;
      try {
        if (failure) {
          failure.extensions.requestId ??= requestId;
          const where = { requestId: failure.extensions.requestId, traceId: scope.trace.traceId, tenantId: args.tenantId, systemId: args.systemId };
          if (failure.code === 'INTERNAL_SERVER_ERROR') this.deps.log.error('invoke failed', { reason: failure.extensions.reason, ...where });
          if (failure.cause !== undefined) this.deps.log.warn('upstream call failed', { code: failure.code, cause: failure.cause, ...where });
        }
      } catch (logFailure) {
        rejection = logFailure; // as a throw in the catch block of an async function would
      } finally {
        // recorded even when the log line cannot be written
        this.finish(scope, args, method, start, requestId, call, undefined, failure);
      }
      return rejection;
    };
    const send = (call: PreparedCall): Promise<InvokeResult> => {
      let sent: Promise<InvokeResult>;
      try {
        // After prepare(): a refused call is never stored. A caller without an id has no namespace
        // of its own for keys, so nothing is stored for it (the key still goes upstream).
        const store = call.idempotencyKey && scope.principal.callerId ? this.deps.idempotency : undefined;
        const dispatch = () => (mode === 'query' ? scope.dispatcher.load(call) : sendOne(this.deps.exchange, call, scope.trace));
        sent = store ? store.run(scope.principal.callerId, call, dispatch) : dispatch();
      } catch (caught) {
        return Promise.reject(failed(caught, call));
      }
      return sent.then(
        (result) => {
          this.finish(scope, args, method, start, requestId, call, result, undefined);
          return result;
        },
        (caught: unknown) => {
          throw failed(caught, call);
        },
      );
    };
    let prepared: PreparedCall | Promise<PreparedCall>;
    try {
      // Records are never dropped: while the audit buffer is full (database away), refuse first.
      if (this.deps.audit.full) {
        this.deps.metrics?.auditRefusals.inc();
        throw new HubError('SERVICE_UNAVAILABLE', 'The hub cannot store invocation records right now; retry later.');
      }
      prepared = this.prepare(scope, args, method, mode, requestId);
    } catch (caught) {
      return Promise.reject(failed(caught, undefined));
    }
    if (!(prepared instanceof Promise)) return send(prepared);
    return prepared.then(send, (caught: unknown) => {
      throw failed(caught, undefined);
    });
  }

  /** Metrics, the debug line and the invocation record of one ended field, refused or not. */
  private finish(scope: InvokeScope, args: InvokeArgs, method: HttpMethod, start: number, requestId: string, call: PreparedCall | undefined, result: InvokeResult | undefined, failure: HubError | undefined) {
    const seconds = (performance.now() - start) / 1000;
    // Tenant and system label only calls whose binding exists: unknown ids from callers must not
    // grow the metric without bound.
    const known = call !== undefined;
    this.deps.metrics?.countInvocation(known ? call.target.tenantId : '', known ? call.target.systemId : '', result ? 'ok' : (failure?.code ?? 'INTERNAL_SERVER_ERROR'));
    this.deps.metrics?.invokeDuration.observe(seconds);
    if (this.deps.log.enabled('debug')) this.logInvoke(scope, args, method, seconds, result, failure, requestId);
    const createdAt = new Date();
    this.deps.audit.record({
      id: timeOrderedUuid(createdAt.getTime()),
      createdAt,
      callerId: scope.principal.callerId,
      tenantId: storable(args.tenantId, 128),
      systemId: storable(args.systemId, 128),
      method,
      path: storable(args.params.path, 2048),
      status: result?.status ?? null,
      code: result ? null : (failure?.code ?? 'INTERNAL_SERVER_ERROR'),
      durationMs: Math.round((performance.now() - start) * 1000) / 1000,
      requestId: result?.requestId ?? String(failure?.extensions.requestId ?? requestId),
    });
  }

  private logInvoke(scope: InvokeScope, args: InvokeArgs, method: HttpMethod, seconds: number, result: InvokeResult | undefined, failure: HubError | undefined, requestId: string) {
    this.deps.log.debug('invoke', {
      requestId: result?.requestId ?? failure?.extensions.requestId ?? requestId,
      traceId: scope.trace.traceId,
      tenantId: args.tenantId,
      systemId: args.systemId,
      method,
      status: result?.status,
      code: failure?.code,
      ms: Math.round(seconds * 1e6) / 1e3,
    });
  }

  /**
   * The call, checked: at once when the quota, the grants and the target are answered from memory
   * (a warm call), else a promise of it. Throws, or rejects, with the refusal.
   */
  private prepare(scope: InvokeScope, args: InvokeArgs, method: HttpMethod, mode: 'query' | 'mutation', requestId: string): PreparedCall | Promise<PreparedCall> {
    const { principal } = scope;
    // 1. The request itself: checks that reveal nothing about any tenant or system.
    if (principal.disabled) throw forbidden('This caller is disabled.');
    if (isAdmin(principal)) return this.prepareRequest(scope, args, method, mode, requestId);
    const hit = this.quota.hit(principal.callerId, principal.quotaPerMinute ?? this.deps.quotaPerMinute);
    // The in-process limiter answers at once; Redis's verdict is awaited.
    if (hit instanceof Promise) return hit.then((quota) => this.prepareRequest(scope, args, method, mode, requestId, quota));
    return this.prepareRequest(scope, args, method, mode, requestId, hit);
  }

  /** The rest of 1., once the quota allows the call (admins have none), then 2. and 3. */
  private prepareRequest(scope: InvokeScope, args: InvokeArgs, method: HttpMethod, mode: 'query' | 'mutation', requestId: string, quota?: Verdict): PreparedCall | Promise<PreparedCall> {
    const { principal, loaders } = scope;
    const { tenantId, systemId, params } = args;
    if (quota && !quota.allowed) {
      throw new HubError('RATE_LIMITED', 'This caller has used its invoke quota for this minute.', { retryAfterMs: quota.retryAfterMs });
    }
    if (mode === 'query' && !SAFE_METHODS.has(method)) throw badInput(`Query.invoke sends only GET and HEAD; use Mutation.invoke for ${method}.`);
    const path = checkPath(params.path);
    const pathAndQuery = path + encodeQuery(params.query);
    let body: string | undefined;
    if (params.body !== undefined && params.body !== null) {
      if (SAFE_METHODS.has(method)) throw badInput(`params.body is not allowed with ${method}.`);
      body = JSON.stringify(params.body);
      if (body.length > MAX_BODY) throw badInput(`params.body is larger than ${MAX_BODY} bytes.`);
    }
    const idempotencyKey = params.idempotencyKey ?? undefined;
    if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
      throw badInput('params.idempotencyKey must be 1 to 255 visible ASCII characters.');
    }
    // 2. The grant, before anything about the target is looked at: an unknown tenant and an
    //    ungranted one look the same to a caller.
    const checked = { method, pathAndQuery, body, idempotencyKey, requestId };
    if (isAdmin(principal)) return this.callTo(scope, args, checked);
    const granted = (grants: Grant[]) => {
      if (!grants.some((g) => grantCovers(g, { tenantId, systemId, method, path }))) {
        throw forbidden(`No grant allows this caller to ${method} ${path} on system "${clip(systemId, 64)}" of tenant "${clip(tenantId, 64)}".`);
      }
      return this.callTo(scope, args, checked);
    };
    const cachedOrLoading = loaders.grantsOnTenantNow(grantKey(principal.callerId, tenantId));
    return cachedOrLoading instanceof Promise ? cachedOrLoading.then(granted) : granted(cachedOrLoading);
  }

  /** 3. The target, and the call to it with the caller's headers checked against its rules. */
  private callTo(scope: InvokeScope, args: InvokeArgs, checked: Omit<PreparedCall, 'target' | 'headers'>): PreparedCall | Promise<PreparedCall> {
    const resolved = this.target(scope, args.tenantId, args.systemId);
    const call = (target: Target): PreparedCall => ({
      target,
      method: checked.method,
      pathAndQuery: checked.pathAndQuery,
      headers: checkCallerHeaders(args.params.headers, target.reservedHeaders),
      body: checked.body,
      idempotencyKey: checked.idempotencyKey,
      requestId: checked.requestId,
    });
    return resolved instanceof Promise ? resolved.then(call) : call(resolved);
  }

  private target(scope: InvokeScope, tenantId: string, systemId: string): Target | Promise<Target> {
    const key = bindingKey(tenantId, systemId);
    let target = scope.targets.get(key);
    if (!target) {
      try {
        target = this.resolve(scope.loaders, tenantId, systemId, key);
      } catch (error) {
        // Refused at once (unknown, disabled, a credential that does not open): the request's
        // other fields for this binding get the same answer without working it out again.
        target = Promise.reject(error as Error);
      }
      scope.targets.set(key, target);
    }
    return target;
  }

  /** The target at once when the registry cache holds all three rows, else a promise of it. */
  private resolve(loaders: RegistryLoaders, tenantId: string, systemId: string, key: string): Target | Promise<Target> {
    const tenant = loaders.tenantNow(tenantId);
    const system = loaders.systemNow(systemId);
    const binding = loaders.bindingNow(key);
    if (tenant instanceof Promise || system instanceof Promise || binding instanceof Promise) {
      return Promise.all([tenant, system, binding]).then(([t, s, b]) => this.targetOf(tenantId, systemId, key, t, s, b));
    }
    return this.targetOf(tenantId, systemId, key, tenant, system, binding);
  }

  /** @param key bindingKey(tenantId, systemId) */
  private targetOf(tenantId: string, systemId: string, key: string, tenant: Tenant | null, system: System | null, binding: Binding | null): Target {
    if (!tenant) throw notFound(`Tenant "${clip(tenantId, 64)}" does not exist.`);
    if (!system) throw notFound(`System "${clip(systemId, 64)}" does not exist.`);
    if (!binding) throw notFound(`System "${systemId}" is not bound to tenant "${tenantId}".`);
    if (tenant.disabled) throw forbidden(`Tenant "${tenantId}" is disabled.`);
    if (binding.disabled) throw forbidden(`The binding of system "${systemId}" to tenant "${tenantId}" is disabled.`);
    // Opening a credential costs a decryption: done once per binding version, not per call.
    const build = () => resolveTarget(this.deps.box, system, binding, this.deps.tokens);
    const cache = this.deps.cache;
    if (!cache) return build();
    const targetKey = `target:${key}:${binding.updatedAt.getTime()}:${system.updatedAt.getTime()}`;
    const hit = cache.get<Target>(targetKey);
    if (hit) return hit;
    const token = cache.begin();
    const target = build();
    cache.store(token, targetKey, target);
    return target;
  }
}

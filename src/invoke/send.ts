// Builds the second request (single or batched) from a target and the caller's call, sends it
// through the UpstreamClient and shapes the answer into an InvokeResult.
import { performance } from 'node:perf_hooks';
import { randomUuid } from '../utils/random-uuid.js';
import { HubError } from '../errors.js';
import type { HttpMethod } from '../generated/prisma/enums.js';
import { decodeBatch, encodeBatch } from './batch-format.js';
import { allowedHeaders, parseBody } from './response.js';
import type { Target } from './target.js';
import type { UpstreamRequest, UpstreamResponse } from './upstream-client.js';
import type { UpstreamExchange } from './exchange.js';
import { childTraceparent, type TraceContext } from './traceparent.js';

export interface PreparedCall {
  target: Target;
  method: HttpMethod;
  /** the caller's path and encoded query, checked by the path rules */
  pathAndQuery: string;
  /** the caller's headers, checked by the header rules, lower-case names */
  headers: Record<string, string>;
  body: string | undefined;
  idempotencyKey: string | undefined;
  /** sent upstream as X-Request-Id; names the call in errors, logs and its invocation record */
  requestId: string;
}

export interface InvokeResult {
  status: number;
  ok: boolean;
  headers: Record<string, string>;
  data: unknown;
  durationMs: number;
  requestId: string;
}

/** Headers only the hub sets: request id, trace, credential, tenant routing. Set last, so they win. */
function hubHeaders(target: Target, requestId: string, json: boolean, trace: TraceContext): Record<string, string> {
  const h: Record<string, string> = { 'x-request-id': requestId, traceparent: childTraceparent(trace) };
  if (json) h['content-type'] = 'application/json';
  if (target.credential) h[target.credential.name] = target.credential.value;
  if (target.tenantHeader) h[target.tenantHeader.name] = target.tenantHeader.value;
  return h;
}

/**
 * exchange.send with the target's credential: a static one is in req already (hubHeaders); an OAuth2
 * binding's header comes from its token source, and a 401 answer then gets one refresh and one
 * retry, never more (a second 401 is the answer). Returns the secret sent, to scrub from the answer.
 */
async function sendWithCredential(
  exchange: UpstreamExchange,
  target: Target,
  req: UpstreamRequest,
  opts: { retryable: boolean; deadline: number },
): Promise<[UpstreamResponse, string | undefined]> {
  if (!target.oauth2) return [await exchange.send(req, opts), target.credential?.secret];
  const first = await target.oauth2.header();
  const res = await exchange.send({ ...req, headers: { ...req.headers, [first.name]: first.value } }, opts);
  if (res.status !== 401) return [res, first.secret];
  // The 401 retry is a new credential, not a repeat: it is sent whatever the method.
  const second = await target.oauth2.header({ rejected: first.secret });
  if (second.secret === first.secret) return [res, first.secret]; // not renewed (just obtained): the 401 stands
  return [await exchange.send({ ...req, headers: { ...req.headers, [second.name]: second.value } }, opts), second.secret];
}

const elapsed = (start: number) => Math.round((performance.now() - start) * 1000) / 1000;

/** Methods that change nothing: Query.invoke sends only these, and they are safe to send again. */
export const SAFE_METHODS: ReadonlySet<HttpMethod> = new Set<HttpMethod>(['GET', 'HEAD']);

export async function sendOne(exchange: UpstreamExchange, call: PreparedCall, trace: TraceContext): Promise<InvokeResult> {
  const { requestId } = call;
  const { target } = call;
  const headers: Record<string, string> = { accept: 'application/json, */*;q=0.5', ...call.headers, ...hubHeaders(target, requestId, call.body !== undefined, trace) };
  if (call.idempotencyKey) headers['idempotency-key'] = call.idempotencyKey;
  const start = performance.now();
  const [res, secret] = await sendWithCredential(
    exchange,
    target,
    {
      origin: target.origin,
      path: target.basePath + call.pathAndQuery,
      method: call.method,
      headers,
      body: call.body,
      timeoutMs: target.timeoutMs,
    },
    // A repeat is harmless for safe methods, and for calls the system deduplicates by key.
    { retryable: SAFE_METHODS.has(call.method) || call.idempotencyKey !== undefined, deadline: start + target.timeoutMs },
  );
  const contentType = res.headers['content-type'];
  return {
    status: res.status,
    ok: res.status >= 200 && res.status < 300,
    headers: allowedHeaders(res.headers, secret),
    data: call.method === 'HEAD' ? null : parseBody(res.body, typeof contentType === 'string' ? contentType : undefined, secret),
    durationMs: elapsed(start),
    requestId,
  };
}

/** One HTTP request for many calls to one binding; one result (or error) per call, in order. */
export async function sendBatch(exchange: UpstreamExchange, target: Target, calls: PreparedCall[], trace: TraceContext): Promise<(InvokeResult | Error)[]> {
  const batchId = randomUuid();
  const parts = calls.map((c, i) => ({
    id: String(i + 1),
    method: c.method,
    url: c.pathAndQuery,
    headers: { ...c.headers, ...(c.idempotencyKey && { 'idempotency-key': c.idempotencyKey }), 'x-request-id': c.requestId },
  }));
  const start = performance.now();
  const [res, secret] = await sendWithCredential(
    exchange,
    target,
    {
      origin: target.origin,
      path: target.basePath + target.batchPath!,
      method: 'POST',
      headers: { accept: 'application/json', ...hubHeaders(target, batchId, true, trace) },
      body: encodeBatch(parts),
      timeoutMs: target.timeoutMs,
    },
    // A batch carries only Query.invoke calls (GET and HEAD): safe to send again.
    { retryable: calls.every((c) => SAFE_METHODS.has(c.method)), deadline: start + target.timeoutMs },
  );
  const durationMs = elapsed(start);
  const contentType = res.headers['content-type'];
  const payload = parseBody(res.body, typeof contentType === 'string' ? contentType : undefined, secret);
  if (res.status < 200 || res.status > 299) {
    // The batch endpoint itself refused: every call gets that answer, as data.
    const headers = allowedHeaders(res.headers, secret);
    return parts.map((p) => ({ status: res.status, ok: false, headers, data: payload, durationMs, requestId: p.headers['x-request-id'] }));
  }
  const answers = decodeBatch(payload);
  return parts.map((p, i) => {
    const a = answers?.get(p.id);
    if (!a) return new HubError('UPSTREAM_UNREACHABLE', "The called system's batch endpoint gave no valid answer for this call.");
    return {
      status: a.status,
      ok: a.status >= 200 && a.status < 300,
      headers: allowedHeaders(a.headers, secret),
      data: calls[i]!.method === 'HEAD' ? null : a.body,
      durationMs,
      requestId: p.headers['x-request-id'],
    };
  });
}

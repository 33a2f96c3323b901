// Builds the second request (single or batched) from a target and the caller's call, sends it
// through the UpstreamClient and shapes the answer into an InvokeResult.
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { HubError } from '../errors.js';
import type { HttpMethod } from '../generated/prisma/enums.js';
import { decodeBatch, encodeBatch } from './batch-format.js';
import { allowedHeaders, parseBody } from './response.js';
import type { Target } from './target.js';
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from './upstream-client.js';

export interface PreparedCall {
  target: Target;
  method: HttpMethod;
  /** the caller's path and encoded query, checked by the path rules */
  pathAndQuery: string;
  /** the caller's headers, checked by the header rules, lower-case names */
  headers: Record<string, string>;
  body: string | undefined;
  idempotencyKey: string | undefined;
}

export interface InvokeResult {
  status: number;
  ok: boolean;
  headers: Record<string, string>;
  data: unknown;
  durationMs: number;
  requestId: string;
}

/** Headers only the hub sets: request id, credential, tenant routing. Set last, so they win. */
function hubHeaders(target: Target, requestId: string, json: boolean): Record<string, string> {
  const h: Record<string, string> = { 'x-request-id': requestId };
  if (json) h['content-type'] = 'application/json';
  if (target.credential) h[target.credential.name] = target.credential.value;
  if (target.tenantHeader) h[target.tenantHeader.name] = target.tenantHeader.value;
  return h;
}

/**
 * client.send with the target's credential: a static one is in req already (hubHeaders); an OAuth2
 * binding's header comes from its token source, and a 401 answer then gets one refresh and one
 * retry, never more (a second 401 is the answer). Returns the secret sent, to scrub from the answer.
 */
async function sendWithCredential(client: UpstreamClient, target: Target, req: UpstreamRequest): Promise<[UpstreamResponse, string | undefined]> {
  if (!target.oauth2) return [await client.send(req), target.credential?.secret];
  const first = await target.oauth2.header();
  const res = await client.send({ ...req, headers: { ...req.headers, [first.name]: first.value } });
  if (res.status !== 401) return [res, first.secret];
  const second = await target.oauth2.header({ rejected: first.secret });
  return [await client.send({ ...req, headers: { ...req.headers, [second.name]: second.value } }), second.secret];
}

const elapsed = (start: number) => Math.round((performance.now() - start) * 1000) / 1000;

export async function sendOne(client: UpstreamClient, call: PreparedCall): Promise<InvokeResult> {
  const requestId = randomUUID();
  const { target } = call;
  const headers: Record<string, string> = { accept: 'application/json, */*;q=0.5', ...call.headers, ...hubHeaders(target, requestId, call.body !== undefined) };
  if (call.idempotencyKey) headers['idempotency-key'] = call.idempotencyKey;
  const start = performance.now();
  const [res, secret] = await sendWithCredential(client, target, {
    origin: target.origin,
    path: target.basePath + call.pathAndQuery,
    method: call.method,
    headers,
    body: call.body,
    timeoutMs: target.timeoutMs,
  });
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
export async function sendBatch(client: UpstreamClient, target: Target, calls: PreparedCall[]): Promise<(InvokeResult | Error)[]> {
  const batchId = randomUUID();
  const parts = calls.map((c, i) => ({
    id: String(i + 1),
    method: c.method,
    url: c.pathAndQuery,
    headers: { ...c.headers, 'x-request-id': randomUUID() },
  }));
  const start = performance.now();
  const [res, secret] = await sendWithCredential(client, target, {
    origin: target.origin,
    path: target.basePath + target.batchPath!,
    method: 'POST',
    headers: { accept: 'application/json', ...hubHeaders(target, batchId, true) },
    body: encodeBatch(parts),
    timeoutMs: target.timeoutMs,
  });
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

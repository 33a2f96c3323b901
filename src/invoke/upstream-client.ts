// The only place that talks to called systems. One undici Agent: a keep-alive pool per origin,
// an outbound address policy checked at connect time, a deadline over the whole exchange, a cap on
// the answer's size, and no redirect following (a bare dispatch never follows them).
// Requests go through Agent.dispatch with a handler that collects the answer: undici's request()
// wraps each one in an AsyncResource, a Readable body stream and an AbortSignal, which cost more
// CPU per call than the HTTP exchange itself on a fast upstream.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { HubError } from '../errors.js';
import type { HttpMethod } from '../generated/prisma/enums.js';
import type { Logger } from '../log.js';
import type { OutboundPolicy } from './outbound-policy.js';

export interface UpstreamRequest {
  /** scheme://host[:port] */
  origin: string;
  /** the base URL's path + the caller's path + query */
  path: string;
  method: HttpMethod;
  headers: Record<string, string>;
  body?: string;
  /** the system's timeoutMs: named in UPSTREAM_TIMEOUT, and the deadline when none is given */
  timeoutMs: number;
  /** performance.now() by which the whole exchange (headers and body) must be done */
  deadline?: number;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface UpstreamClientOptions {
  policy: OutboundPolicy;
  /** answers larger than this are refused (UPSTREAM_RESPONSE_TOO_LARGE) */
  maxResponseBytes: number;
  log: Logger;
  /** idle keep-alive sockets are closed after this long (default 30 s) */
  keepAliveTimeoutMs?: number;
  /** at most this many sockets per origin (default 128) */
  connectionsPerOrigin?: number;
  /** called once per HTTP request sent */
  onSend?: () => void;
}

class DeniedAddressError extends Error {
  readonly code = 'HUB_OUTBOUND_DENIED';
}

export class UpstreamClient {
  private readonly agent: Agent;

  constructor(private readonly opts: UpstreamClientOptions) {
    const connect = buildConnector({ timeout: 10_000 });
    const { policy, log } = opts;
    this.agent = new Agent({
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
      connections: opts.connectionsPerOrigin ?? 128,
      // Resolve the name ourselves, check every address, and connect to the checked one.
      connect: (options, callback) => {
        const host = options.hostname.replace(/^\[|\]$/g, '');
        const resolve = isIP(host) ? Promise.resolve([{ address: host }]) : lookup(host, { all: true });
        resolve.then(
          (addresses) => {
            const denied = addresses.find((a) => policy.denies(a.address));
            if (denied || addresses.length === 0) {
              log.warn('outbound connection refused by HUB_OUTBOUND_DENY', { host, address: denied?.address });
              callback(new DeniedAddressError(`connection to ${host} refused by the outbound policy`), null);
              return;
            }
            connect({ ...options, hostname: addresses[0]!.address }, callback);
          },
          (error: Error) => callback(error, null),
        );
      },
    });
  }

  send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const max = this.opts.maxResponseBytes;
    const budget = req.deadline === undefined ? req.timeoutMs : Math.max(0, req.deadline - performance.now());
    return new Promise<UpstreamResponse>((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined;
      let settled = false;
      let timedOut = false;
      let status = 0;
      let headers: UpstreamResponse['headers'] = {};
      const chunks: Buffer[] = [];
      let size = 0;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(classify(error, timedOut, req.timeoutMs));
      };
      const timer = setTimeout(() => {
        timedOut = true;
        // Answer now; a request still queued for a socket is aborted as soon as it starts.
        fail(new Error('deadline passed'));
        controller?.abort(new Error('deadline passed'));
      }, budget);
      this.opts.onSend?.();
      this.agent.dispatch(
        { origin: req.origin, path: req.path, method: req.method, headers: req.headers, body: req.body },
        {
          onRequestStart(c) {
            controller = c;
            if (settled) c.abort(new Error('deadline passed'));
          },
          onResponseStart(c, statusCode, responseHeaders) {
            if (statusCode < 200) return; // informational (103 Early Hints): the answer follows
            status = statusCode;
            headers = responseHeaders;
            // A HEAD answer's content-length describes a body that is never sent.
            const length = responseHeaders['content-length'];
            if (req.method !== 'HEAD' && typeof length === 'string' && Number(length) > max) c.abort(tooLarge(max));
          },
          onResponseData(c, chunk) {
            size += chunk.length;
            if (size > max) c.abort(tooLarge(max));
            else chunks.push(chunk);
          },
          onResponseEnd() {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
          },
          onResponseError(_c, error) {
            fail(error);
          },
        },
      );
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

function tooLarge(max: number) {
  return new HubError('UPSTREAM_RESPONSE_TOO_LARGE', `The called system's answer is larger than ${max} bytes.`);
}

/** Network failures become contract codes; the low-level message stays in the server log. */
function classify(error: unknown, timedOut: boolean, timeoutMs: number): Error {
  if (error instanceof HubError) return error;
  if (timedOut) return new HubError('UPSTREAM_TIMEOUT', `The called system did not answer within ${timeoutMs} ms.`);
  const code = String((error as { code?: unknown })?.code ?? '');
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new HubError('UPSTREAM_TIMEOUT', `The called system did not answer within ${timeoutMs} ms.`);
  }
  const unreachable = new HubError('UPSTREAM_UNREACHABLE', 'The called system could not be reached.');
  unreachable.cause = code || (error as Error)?.message; // for the server log only
  return unreachable;
}

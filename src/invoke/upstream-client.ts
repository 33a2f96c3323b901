// The only place that talks to called systems. One undici Agent: a keep-alive pool per origin,
// an outbound address policy checked at connect time, a deadline over the whole exchange, a cap on
// the answer's size, and no redirect following (undici's request() never follows them).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, buildConnector, request } from 'undici';
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

  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const controller = new AbortController();
    let timedOut = false;
    const budget = req.deadline === undefined ? req.timeoutMs : Math.max(0, req.deadline - performance.now());
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, budget);
    this.opts.onSend?.();
    try {
      const res = await request(req.origin + req.path, {
        dispatcher: this.agent,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
      });
      // A HEAD answer's content-length describes a body that is never sent.
      const body = await this.readCapped(res.body, req.method === 'HEAD' ? undefined : res.headers['content-length']);
      return { status: res.statusCode, headers: res.headers, body };
    } catch (error) {
      throw classify(error, timedOut, req.timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  private async readCapped(
    body: AsyncIterable<Buffer> & { destroy(): void; on(event: 'error', listener: () => void): unknown },
    contentLength: string | string[] | undefined,
  ): Promise<Buffer> {
    const max = this.opts.maxResponseBytes;
    if (typeof contentLength === 'string' && Number(contentLength) > max) {
      // Destroying an unread undici body emits 'error'; unheard, that would crash the process.
      body.on('error', () => {});
      body.destroy();
      throw tooLarge(max);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (size > max) {
        body.destroy();
        throw tooLarge(max);
      }
      chunks.push(chunk);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
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

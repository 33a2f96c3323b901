// Helpers of the attack suite (test/security/): a "canary" called system that counts every TCP
// connection it accepts (not only complete requests), and a raw HTTP client for requests that
// fetch() will not send (no content-length, chunked bodies, any content type).
import { request as httpRequest, createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { recordingHandler, type RecordedRequest, type Route } from './upstream.js';

export interface Canary {
  url: string;
  host: string;
  port: number;
  /** TCP connections accepted so far */
  connections: number;
  /** complete requests received so far */
  requests: RecordedRequest[];
  /** connections + requests: 0 means nothing ever reached this server */
  hits(): number;
  route(prefix: string, handler: Route): void;
  close(): Promise<void>;
}

export async function startCanary(host = '127.0.0.1'): Promise<Canary> {
  const requests: RecordedRequest[] = [];
  const routes: [string, Route][] = [];
  const sockets = new Set<Socket>();
  const server = createServer(recordingHandler(requests, routes));
  const canary: Canary = {
    url: '',
    host,
    port: 0,
    connections: 0,
    requests,
    hits: () => canary.connections + requests.length,
    route: (prefix, handler) => routes.unshift([prefix, handler]),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket: Socket) => {
    canary.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  canary.port = (server.address() as AddressInfo).port;
  canary.url = `http://${host.includes(':') ? `[${host}]` : host}:${canary.port}`;
  return canary;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** the body parsed as JSON, or undefined when it is not JSON */
  json: any;
}

/**
 * One HTTP request over node:http. body: a string or Buffer sent with a content-length, unless
 * chunked is true (then it is written in pieces with transfer-encoding: chunked and no length).
 */
export function rawRequest(
  baseUrl: string,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean; timeoutMs?: number },
): Promise<RawResponse> {
  const url = new URL(opts.path ?? '/graphql', baseUrl);
  const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8');
  const headers: Record<string, string> = { ...opts.headers };
  if (body && !opts.chunked) headers['content-length'] = String(body.length);
  return new Promise<RawResponse>((resolve, reject) => {
    const req = httpRequest(
      // agent: false: a fresh connection each time, never a kept-alive socket the server may be closing.
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: opts.method ?? 'POST', headers, timeout: opts.timeoutMs ?? 10_000, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('raw request timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A server that answers (413) and closes before the whole body is written: the answer was
      // already delivered to the response callback, or this is a genuine failure.
      reject(error);
    });
    if (body && opts.chunked) {
      // Several pieces: the server cannot know the size before it has read past the limit.
      const piece = 512;
      for (let i = 0; i < body.length; i += piece) req.write(body.subarray(i, i + piece));
      req.end();
    } else req.end(body);
  });
}

/** Writes a redirect to `location`. */
export function redirectTo(status: number, location: string): Route {
  return (_req, res: ServerResponse) => {
    res.writeHead(status, { location, 'content-type': 'text/plain' });
    res.end(`moved to ${location}`);
  };
}

// A called system on loopback: a real node:http server that records every request it receives.
// By default it echoes the request as JSON; routes can script any other answer.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** path and query as received */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Route = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface Upstream {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** answer requests whose path starts with prefix with this route */
  route(prefix: string, handler: Route): void;
  close(): Promise<void>;
}

export function echo(req: RecordedRequest, res: ServerResponse) {
  res.writeHead(200, { 'content-type': 'application/json', 'x-secret-internal': 'never-forwarded', etag: '"e1"' });
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: req.body }));
}

/** Answers a Microsoft Graph style $batch by echoing each part. */
export function batchEcho(req: RecordedRequest, res: ServerResponse) {
  const { requests } = JSON.parse(req.body) as { requests: { id: string; method: string; url: string; headers: Record<string, string> }[] };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      responses: requests.map((r) => ({ id: r.id, status: 200, headers: { 'content-type': 'application/json' }, body: { method: r.method, url: r.url, headers: r.headers } })),
    }),
  );
}

/** A request handler that records each request, then answers by the first matching route (else echo). */
export function recordingHandler(requests: RecordedRequest[], routes: [string, Route][]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(recorded);
      const match = routes.find(([prefix]) => recorded.url.startsWith(prefix));
      Promise.resolve((match?.[1] ?? echo)(recorded, res)).catch(() => res.destroy());
    });
  };
}

export async function startUpstream(): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const routes: [string, Route][] = [];
  const server = createServer(recordingHandler(requests, routes));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    route: (prefix, handler) => routes.unshift([prefix, handler]),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

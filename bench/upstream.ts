// The benchmark's called system, run as its own process (pinned apart from the hub by bench/run.ts):
//   GET  /fast/*    a small JSON answer at once
//   GET  /slow/*    the same answer after 20 ms
//   POST /batch     a Microsoft Graph style $batch: one small JSON answer per part (src/invoke/batch-format.ts)
//   GET  /__count   {"count": n}: requests received since start or the last reset (/__* excluded)
//   POST /__reset   sets the count to 0
// It listens on 127.0.0.1 (port BENCH_UPSTREAM_PORT, default any) and prints "READY <port>" once listening.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { serveAsChild } from './child.js';

const SLOW_MS = 20;
const ANSWER = JSON.stringify({ id: 42, name: 'Ada Lovelace', active: true, tags: ['bench'] });
const ANSWER_HEADERS = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(ANSWER)) };

let count = 0;

function json(res: ServerResponse, status: number, body: string) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function batch(req: IncomingMessage, res: ServerResponse) {
  const parsed = JSON.parse(await readBody(req)) as { requests?: { id: string }[] };
  const answer = { id: 42, name: 'Ada Lovelace', active: true, tags: ['bench'] };
  const responses = (parsed.requests ?? []).map((r) => ({ id: r.id, status: 200, headers: { 'content-type': 'application/json' }, body: answer }));
  json(res, 200, JSON.stringify({ responses }));
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/__')) {
    if (url === '/__count') return json(res, 200, JSON.stringify({ count }));
    if (url === '/__reset' && req.method === 'POST') {
      count = 0;
      return json(res, 200, '{"count":0}');
    }
    return json(res, 404, '{"error":"not found"}');
  }
  count++;
  if (url.startsWith('/fast/')) {
    req.resume();
    res.writeHead(200, ANSWER_HEADERS);
    res.end(ANSWER);
  } else if (url.startsWith('/slow/')) {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, ANSWER_HEADERS);
      res.end(ANSWER);
    }, SLOW_MS);
  } else if (url === '/batch' && req.method === 'POST') {
    batch(req, res).catch(() => json(res, 400, '{"error":"bad batch"}'));
  } else {
    req.resume();
    json(res, 404, '{"error":"not found"}');
  }
});
server.keepAliveTimeout = 60_000;

serveAsChild(server, Number(process.env.BENCH_UPSTREAM_PORT ?? 0));

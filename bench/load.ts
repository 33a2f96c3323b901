// One load run, in this process: as fast as the server answers with autocannon, or at a fixed rate
// with evenly spaced requests (paced). Latencies are taken from every response with sub-millisecond
// precision (autocannon's own histogram keeps whole milliseconds only).
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';

export interface LoadRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  /** one body for every request */
  body?: string;
  /** or: bodies used in turn (e.g. rotating GraphQL variables) */
  bodies?: string[];
  /** a 2xx answer whose body contains this is counted as failed (GraphQL "errors") */
  failIfBodyContains?: string;
}

export interface LoadOptions {
  connections: number;
  durationS: number;
  /** requests per second over all connections; unset: as fast as the server answers */
  overallRate?: number;
}

export interface LoadResult {
  /** completed 2xx answers */
  ok: number;
  /** non-2xx answers, connection errors, timeouts and 2xx answers carrying failIfBodyContains */
  failed: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}

class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(v: number) {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  percentile(p: number): number {
    if (this.length === 0) return Number.NaN;
    const sorted = this.data.subarray(0, this.length).sort();
    return sorted[Math.min(this.length - 1, Math.floor((p / 100) * this.length))]!;
  }
}

export function runLoad(req: LoadRequest, opts: LoadOptions): Promise<LoadResult> {
  return opts.overallRate ? runPaced(req, opts, opts.overallRate) : runFlatOut(req, opts);
}

/**
 * A fixed rate with requests spread evenly over time, over up to `connections` keep-alive
 * connections. (autocannon's overallRate starts every connection's requests on the same tick, so
 * they arrive in bursts of `connections` and queue behind each other: that measures the burst, not
 * the time a request spends in the server.)
 */
async function runPaced(req: LoadRequest, opts: LoadOptions, rate: number): Promise<LoadResult> {
  const latencies = new Samples();
  const agent = new Agent({ connections: opts.connections, keepAliveTimeout: 30_000 });
  let ok = 0;
  let failed = 0;
  let n = 0;
  const inflight = new Set<Promise<void>>();
  const send = async () => {
    const body = req.bodies ? req.bodies[n++ % req.bodies.length] : req.body;
    const t0 = performance.now();
    try {
      const res = await request(req.url, { method: req.method, headers: req.headers, body, dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300 && !(req.failIfBodyContains && text.includes(req.failIfBodyContains))) {
        ok++;
        latencies.push(performance.now() - t0);
      } else failed++;
    } catch {
      failed++;
    }
  };
  const started = performance.now();
  const end = started + opts.durationS * 1000;
  const interval = 1000 / rate;
  let due = started;
  while (performance.now() < end) {
    // Send every request whose time has come (timers wake about once a millisecond).
    while (due <= performance.now()) {
      const p = send();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      due += interval;
    }
    await sleep(Math.max(0, Math.min(1, due - performance.now())));
  }
  await Promise.all(inflight);
  await agent.close();
  const seconds = (performance.now() - started) / 1000;
  return { ok, failed, seconds, rps: ok / seconds, p50: latencies.percentile(50), p99: latencies.percentile(99) };
}

function runFlatOut(req: LoadRequest, opts: LoadOptions): Promise<LoadResult> {
  const latencies = new Samples();
  let ok = 0;
  let failed = 0;
  const bodies = req.bodies;
  let next = 0;
  const marker = req.failIfBodyContains;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: req.url,
        method: req.method,
        headers: req.headers,
        body: req.body,
        connections: opts.connections,
        duration: opts.durationS,
        overallRate: opts.overallRate,
        timeout: 10,
        requests: bodies ? [{ setupRequest: (r) => ({ ...r, body: bodies[next++ % bodies.length] }) }] : undefined,
        verifyBody: marker ? (body) => !String(body).includes(marker) : undefined,
      },
      (error: unknown, result: autocannon.Result) => {
        if (error) return reject(error instanceof Error ? error : new Error(String(error)));
        const seconds = (performance.now() - started) / 1000;
        // Mismatched bodies were 2xx answers: move them from ok to failed.
        const good = ok - result.mismatches;
        resolve({
          ok: good,
          failed: failed + result.mismatches + result.errors,
          seconds,
          rps: good / seconds,
          p50: latencies.percentile(50),
          p99: latencies.percentile(99),
        });
      },
    );
    instance.on('response', (_client: autocannon.Client, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        latencies.push(responseTime);
      } else failed++;
    });
  });
}

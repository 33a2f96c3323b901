// One load run with autocannon, in this process. Latencies are taken from every response with
// sub-millisecond precision (autocannon's own histogram keeps whole milliseconds only).
import autocannon from 'autocannon';

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

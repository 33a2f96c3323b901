// A hub under test: `node dist/main.js`, with the flags and environment `npm start` gives it, in its
// own process, pinned to CPU 0, and what the benchmark reads from it (its counters from GET
// /metrics, its RSS from /proc).
import { buildHub, cpuMsOf, freePort, rssOf, startNode, waitForHttp, type Child } from './processes.js';
import { startCommand } from '../scripts/start-command.js';
import type { LoadRequest } from './load.js';

export const HUB_CPU = 0;

export interface HubCounters {
  /** hub_db_queries_total; null until the hub exposes /metrics */
  dbQueries: number | null;
  /** hub_upstream_requests_total; null until the hub exposes /metrics */
  upstreamRequests: number | null;
  /** hub_invocations_total summed by outcome (ok or an error code) */
  outcomes: Record<string, number>;
}

function outcomesOf(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^hub_invocations_total\{.*outcome="([A-Za-z_]+)".*\} (\S+)$/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

export interface HubUnderTest {
  name: string;
  url: string;
  adminKey: string;
  pid: number;
  counters(): Promise<HubCounters>;
  /** bytes; from /proc, else the hub's process_resident_memory_bytes */
  rss(): Promise<number | null>;
  /** V8 heap in use and memory outside it (bytes), from the hub's default metrics, or null */
  memory(): Promise<{ heapUsed: number; external: number } | null>;
  /** CPU time used so far, ms (from /proc), or null */
  cpuMs(): number | null;
  stop(): Promise<void>;
}

export interface HubStart {
  name: string;
  adminKey: string;
  dataDir: string;
  /** PostgreSQL; unset: the embedded PGlite in dataDir */
  databaseUrl?: string;
  encryptionKey?: string;
  /** extra settings, e.g. HUB_CACHE_ENTRIES=0 */
  env?: Record<string, string>;
  /** extra node flags, e.g. --cpu-prof */
  nodeArgs?: string[];
  /** false: plain `node dist/main.js`, without the flags and environment `npm start` adds (for A/B runs) */
  startFlags?: boolean;
  /** a built hub to run instead of this tree's (bench/ab.ts: another tree's dist/main.js) */
  mainJs?: string;
}

function metricValue(text: string, name: string): number | null {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)\\s*$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

export async function startHubProcess(o: HubStart): Promise<HubUnderTest> {
  const port = await freePort();
  const start = o.startFlags === false ? { env: {}, nodeArgs: [] } : startCommand();
  const child: Child = startNode(o.name, o.mainJs ?? buildHub(), {
    cpu: HUB_CPU,
    nodeArgs: [...start.nodeArgs, ...(o.nodeArgs ?? [])],
    env: {
      ...start.env,
      NODE_ENV: 'production',
      HUB_HOST: '127.0.0.1',
      HUB_PORT: String(port),
      HUB_DATA_DIR: o.dataDir,
      HUB_ADMIN_KEY: o.adminKey,
      HUB_LOG_LEVEL: 'warn',
      HUB_QUOTA_PER_MINUTE: '100000000',
      HUB_SHUTDOWN_TIMEOUT_MS: '3000',
      ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl, HUB_ENCRYPTION_KEY: o.encryptionKey ?? '' } : {}),
      ...o.env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(child, `${url}/readyz`, 180_000);
  } catch (error) {
    await child.stop();
    throw error;
  }
  const metrics = async (): Promise<string | null> => {
    try {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
      return res.status === 200 ? await res.text() : null;
    } catch {
      return null;
    }
  };
  return {
    name: o.name,
    url,
    adminKey: o.adminKey,
    pid: child.pid,
    counters: async () => {
      const text = await metrics();
      return {
        dbQueries: text === null ? null : metricValue(text, 'hub_db_queries_total'),
        upstreamRequests: text === null ? null : metricValue(text, 'hub_upstream_requests_total'),
        outcomes: text === null ? {} : outcomesOf(text),
      };
    },
    rss: async () => {
      const fromProc = rssOf(child.pid);
      if (fromProc !== null) return fromProc;
      const text = await metrics();
      return text === null ? null : metricValue(text, 'process_resident_memory_bytes');
    },
    memory: async () => {
      const text = await metrics();
      const heapUsed = text === null ? null : metricValue(text, 'nodejs_heap_size_used_bytes');
      const external = text === null ? null : metricValue(text, 'nodejs_external_memory_bytes');
      return heapUsed === null || external === null ? null : { heapUsed, external };
    },
    cpuMs: () => cpuMsOf(child.pid),
    stop: () => child.stop(),
  };
}

/** The load request of GraphQL bodies (one, or used in turn) to a hub, as a caller's key sends them. */
export function hubRequest(hub: HubUnderTest, key: string, bodies: string[]): LoadRequest {
  return {
    url: `${hub.url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${key}` },
    ...(bodies.length === 1 ? { body: bodies[0] } : { bodies }),
    failIfBodyContains: '"errors"',
  };
}

// Per-request coalescing of Query.invoke calls: identical calls are sent once, and calls to a
// system with a batchPath are grouped by binding into batches of at most batchMaxSize.
import DataLoader from 'dataloader';
import type { UpstreamExchange } from './exchange.js';
import type { TraceContext } from './traceparent.js';
import { sendBatch, sendOne, type InvokeResult, type PreparedCall } from './send.js';

export function dedupeKey(call: PreparedCall): string {
  const { tenantId, systemId } = call.target;
  let plain = call.idempotencyKey === undefined;
  for (const _ in call.headers) {
    plain = false;
    break;
  }
  // Most calls carry no headers and no key of their own: their four parts joined by NUL, which none
  // can contain (registry ids are PostgreSQL text, paths refuse control characters). The JSON form
  // below starts with '[', so the two never meet.
  if (plain) return `${tenantId}\u0000${systemId}\u0000${call.method}\u0000${call.pathAndQuery}`;
  const headers = Object.entries(call.headers).sort(([a], [b]) => (a < b ? -1 : 1));
  // Calls under different idempotency keys stay apart: each key reaches the called system.
  return JSON.stringify([tenantId, systemId, call.method, call.pathAndQuery, headers, call.idempotencyKey ?? null]);
}

export function createCallDispatcher(exchange: UpstreamExchange, trace: TraceContext) {
  return new DataLoader<PreparedCall, InvokeResult, string>(
    async (calls) => {
      const results: (InvokeResult | Error)[] = new Array(calls.length);
      const byBinding = new Map<string, number[]>();
      calls.forEach((c, i) => {
        const k = c.target.batchPath ? `${c.target.tenantId}\u0000${c.target.systemId}` : `single\u0000${i}`;
        const group = byBinding.get(k);
        if (group) group.push(i);
        else byBinding.set(k, [i]);
      });
      await Promise.all(
        [...byBinding.values()].flatMap((indexes) => {
          const target = calls[indexes[0]!]!.target;
          if (indexes.length === 1 || !target.batchPath) {
            return indexes.map((i) =>
              sendOne(exchange, calls[i]!, trace).then(
                (r) => void (results[i] = r),
                (e: Error) => void (results[i] = e),
              ),
            );
          }
          const chunks: number[][] = [];
          for (let s = 0; s < indexes.length; s += target.batchMaxSize) chunks.push(indexes.slice(s, s + target.batchMaxSize));
          return chunks.map((chunk) =>
            sendBatch(exchange, target, chunk.map((i) => calls[i]!), trace).then(
              (answers) => chunk.forEach((i, n) => (results[i] = answers[n]!)),
              (e: Error) => chunk.forEach((i) => (results[i] = e)),
            ),
          );
        }),
      );
      return results;
    },
    {
      cacheKeyFn: dedupeKey,
      // Wait for every field's registry lookups to settle so that all calls of the document meet
      // in one dispatch, whatever their resolvers awaited first.
      batchScheduleFn: (run) => setImmediate(run),
    },
  );
}

export type CallDispatcher = ReturnType<typeof createCallDispatcher>;

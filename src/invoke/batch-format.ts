// The JSON batching format of Microsoft Graph's $batch, used for systems with a batchPath:
//   {"requests":[{"id","method","url","headers"}]} -> {"responses":[{"id","status","headers","body"}]}

export interface BatchPart {
  id: string;
  method: string;
  /** path and query, relative to the base URL */
  url: string;
  headers: Record<string, string>;
}

export interface BatchAnswer {
  id: string;
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export function encodeBatch(parts: BatchPart[]): string {
  return JSON.stringify({ requests: parts });
}

/** Returns the answers by id, or null when the payload is not a batch answer. */
export function decodeBatch(payload: unknown): Map<string, BatchAnswer> | null {
  const responses = (payload as { responses?: unknown } | null)?.responses;
  if (!Array.isArray(responses)) return null;
  const out = new Map<string, BatchAnswer>();
  for (const r of responses as Record<string, unknown>[]) {
    if (!r || (typeof r.id !== 'string' && typeof r.id !== 'number')) return null;
    const status = Number(r.status);
    if (!Number.isInteger(status) || status < 100 || status > 599) return null;
    const headers: Record<string, string> = {};
    if (r.headers && typeof r.headers === 'object') {
      for (const [k, v] of Object.entries(r.headers as Record<string, unknown>)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
    }
    out.set(String(r.id), { id: String(r.id), status, headers, body: r.body ?? null });
  }
  return out;
}

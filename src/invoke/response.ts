// What of a called system's answer reaches the caller: an allow-list of headers (lower-case names)
// and the body, parsed as JSON when it says so, else as text.

const ALLOWED = new Set([
  'content-type',
  'content-language',
  'content-disposition',
  'cache-control',
  'etag',
  'last-modified',
  'expires',
  'location',
  'retry-after',
  'link',
  'x-total-count',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
]);

export function allowedHeaders(headers: Record<string, string | string[] | undefined | null | number>, secret?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    const lower = name.toLowerCase();
    if (!ALLOWED.has(lower) || value == null) continue;
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    out[lower] = secret && text.includes(secret) ? text.replaceAll(secret, '[redacted]') : text;
  }
  return out;
}

function scrub(value: unknown, secret: string): unknown {
  if (typeof value === 'string') return value.includes(secret) ? value.replaceAll(secret, '[redacted]') : value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secret));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [scrub(k, secret) as string, scrub(v, secret)]));
  }
  return value;
}

const JSON_TYPE = /^application\/([\w.+-]*\+)?json\b/i;

/**
 * @param secret the credential the hub injected: a called system that echoes it back (debug
 *   pages, echo endpoints) does not get it to the caller.
 */
export function parseBody(body: Buffer, contentType: string | undefined, secret?: string): unknown {
  if (body.length === 0) return null;
  let text = body.toString('utf8');
  if (secret && text.includes(secret)) text = text.replaceAll(secret, '[redacted]');
  if (contentType && JSON_TYPE.test(contentType)) {
    try {
      const parsed: unknown = JSON.parse(text);
      // Escapes such as "\/" or "\u0041" can hide the secret from the text search above; only
      // a body with escapes needs the walk through every string.
      return secret && text.includes('\\') ? scrub(parsed, secret) : parsed;
    } catch {
      return text; // a system that says JSON and sends something else: the caller sees what came
    }
  }
  return text;
}

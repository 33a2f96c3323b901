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
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!ALLOWED.has(lower) || value == null) continue;
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    out[lower] = secret && text.includes(secret) ? text.replaceAll(secret, '[redacted]') : text;
  }
  return out;
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
      return JSON.parse(text);
    } catch {
      return text; // a system that says JSON and sends something else: the caller sees what came
    }
  }
  return text;
}

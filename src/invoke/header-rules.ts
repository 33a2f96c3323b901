// Which request headers a caller may send through the hub. Everything about identity, routing and
// message framing belongs to the hub: credentials, the tenant header, hop-by-hop headers, lengths.
import { badInput } from '../errors.js';

const RESERVED = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'host',
  // hop-by-hop (RFC 9110 7.6.1) and framing
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
  // origin and forwarding information only the hub may assert
  'forwarded',
  'via',
  // set by the hub from the invoke itself
  'x-request-id',
  'idempotency-key',
  'content-type',
  'traceparent',
  'tracestate',
  // would make the called system run another method than the one the grant allowed
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

// CGI, WSGI, Rack and PHP read "-" and "_" in header names alike (X_Tenant_Id is HTTP_X_TENANT_ID).
const canonical = (name: string) => name.toLowerCase().replace(/_/g, '-');

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_HEADERS = 64;
const MAX_VALUE = 8192;

export function isReservedHeader(name: string): boolean {
  const n = canonical(name);
  return RESERVED.has(n) || n.startsWith('x-forwarded-');
}

/**
 * Validates caller headers and returns them with lower-case names. `routing` are header names that
 * this target reserves on top (the system's tenant header, the credential's header).
 */
export function checkCallerHeaders(headers: unknown, routing: readonly string[]): Record<string, string> {
  if (headers === undefined || headers === null) return {};
  if (typeof headers !== 'object' || Array.isArray(headers)) throw badInput('params.headers must be an object of header names to string values.');
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) throw badInput(`params.headers may hold at most ${MAX_HEADERS} headers.`);
  const extra = new Set(routing.map(canonical));
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!TOKEN.test(name) || name.length > 128) throw badInput(`Header name ${JSON.stringify(name)} is not a valid HTTP header name.`);
    const lower = name.toLowerCase();
    if (isReservedHeader(lower) || extra.has(canonical(lower))) throw badInput(`Header "${name}" is set by the hub and may not be sent by callers.`);
    if (typeof value !== 'string') throw badInput(`Header "${name}" must have a string value.`);
    if (/[\r\n\0]/.test(value)) throw badInput(`Header "${name}" contains CR, LF or NUL.`);
    if (/[\u0001-\u0008\u000a-\u001f\u007f]/.test(value) || value.length > MAX_VALUE) {
      throw badInput(`Header "${name}" has control characters or is longer than ${MAX_VALUE} characters.`);
    }
    if (lower in out) throw badInput(`Header "${name}" is given twice.`);
    out[lower] = value.trim();
  }
  return out;
}

export function checkHeaderValue(field: string, value: string): string {
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) throw badInput(`${field} must not contain CR, LF, NUL or other control characters.`);
  if (value.length < 1 || value.length > MAX_VALUE) throw badInput(`${field} must be 1 to ${MAX_VALUE} characters.`);
  return value;
}

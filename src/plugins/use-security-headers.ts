// Response headers that keep browsers from sniffing, framing or caching the hub's answers.
import type { Plugin } from 'graphql-yoga';

// Pairs built once: set on every response, so no per-response Object.entries().
const COMMON: readonly (readonly [string, string])[] = [
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
  ['cross-origin-resource-policy', 'same-origin'],
  ['cross-origin-opener-policy', 'same-origin'],
];

// GraphiQL is a self-contained page with inline scripts; everything else is data.
const HTML_CSP = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

/** The headers to set on a response of this content type (cache-control only where none is set). */
export function securityHeaders(contentType: string | null, hasCacheControl: boolean): (readonly [string, string])[] {
  const pairs = [...COMMON, ['content-security-policy', contentType?.includes('text/html') ? HTML_CSP : DATA_CSP] as const];
  if (!hasCacheControl) pairs.push(['cache-control', 'no-store']);
  return pairs;
}

/** Every JSON answer of the invoke fast path: built once. */
export const JSON_RESPONSE_SECURITY_HEADERS = securityHeaders('application/json', false);

export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      for (const [name, value] of securityHeaders(response.headers.get('content-type'), response.headers.has('cache-control'))) response.headers.set(name, value);
    },
  };
}

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

type Pairs = readonly (readonly [string, string])[];
const NO_STORE = ['cache-control', 'no-store'] as const;
// The four sets, built once: nothing is allocated per response.
const HTML: Pairs = [...COMMON, ['content-security-policy', HTML_CSP]];
const DATA: Pairs = [...COMMON, ['content-security-policy', DATA_CSP]];
const HTML_NO_STORE: Pairs = [...HTML, NO_STORE];
const DATA_NO_STORE: Pairs = [...DATA, NO_STORE];

/** The headers to set on a response of this content type (cache-control only where none is set). */
export function securityHeaders(contentType: string | null, hasCacheControl: boolean): Pairs {
  const html = contentType?.includes('text/html') === true;
  if (hasCacheControl) return html ? HTML : DATA;
  return html ? HTML_NO_STORE : DATA_NO_STORE;
}

/** Every JSON answer of the invoke fast path. */
export const JSON_RESPONSE_SECURITY_HEADERS = DATA_NO_STORE;

export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      for (const [name, value] of securityHeaders(response.headers.get('content-type'), response.headers.has('cache-control'))) response.headers.set(name, value);
    },
  };
}

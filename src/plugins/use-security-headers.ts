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

export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      for (const [name, value] of COMMON) response.headers.set(name, value);
      const html = response.headers.get('content-type')?.includes('text/html');
      // GraphiQL is a self-contained page with inline scripts; everything else is data.
      response.headers.set('content-security-policy', html ? "frame-ancestors 'none'; base-uri 'none'; form-action 'none'" : "default-src 'none'; frame-ancestors 'none'");
      if (!response.headers.has('cache-control')) response.headers.set('cache-control', 'no-store');
    },
  };
}

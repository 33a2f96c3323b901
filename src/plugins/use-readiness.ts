// GET /readyz: 200 once the database is reachable and migrated, 503 otherwise (and while draining).
import type { Plugin } from 'graphql-yoga';

export interface ReadinessOptions {
  /** default '/readyz' */
  endpoint?: string;
  /** resolves true when the hub can serve */
  check: () => Promise<boolean>;
}

export function useReadiness({ endpoint = '/readyz', check }: ReadinessOptions): Plugin {
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== endpoint || request.method !== 'GET') return;
      const ready = await check().catch(() => false);
      endResponse(
        new fetchAPI.Response(JSON.stringify({ ready }), {
          status: ready ? 200 : 503,
          headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
        }),
      );
    },
  };
}

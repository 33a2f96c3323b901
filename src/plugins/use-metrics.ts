// GET /metrics in the Prometheus text format. It shows counts, never tenant data or secrets;
// still, expose it only to the monitoring network.
import type { Plugin } from 'graphql-yoga';
import type { HubMetrics } from '../observability/metrics.js';

export function useMetrics(metrics: HubMetrics, { endpoint = '/metrics' }: { endpoint?: string } = {}): Plugin {
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== endpoint || request.method !== 'GET') return;
      endResponse(new fetchAPI.Response(await metrics.registry.metrics(), { headers: { 'content-type': metrics.registry.contentType } }));
    },
  };
}

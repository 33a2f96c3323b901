// createApp(deps): the Yoga instance with schema, context and plugins. No listening here.
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { Authenticator } from './access/authenticator.js';
import type { HubContext, Services } from './context.js';
import { createCallDispatcher } from './invoke/call-dispatcher.js';
import type { UpstreamExchange } from './invoke/exchange.js';
import { traceOf } from './invoke/traceparent.js';
import type { Logger } from './log.js';
import { useBodyLimit } from './plugins/use-body-limit.js';
import { useDocumentLimits, type DocumentLimitsOptions } from './plugins/use-document-limits.js';
import { useNoSuggestions } from './plugins/use-no-suggestions.js';
import { useReadiness } from './plugins/use-readiness.js';
import { useMetrics } from './plugins/use-metrics.js';
import type { HubMetrics } from './observability/metrics.js';
import { useRequestPolicy } from './plugins/use-request-policy.js';
import { useRegistryInvalidation } from './plugins/use-registry-invalidation.js';
import type { ChangeFeed } from './registry/change-feed.js';
import { useSecurityHeaders } from './plugins/use-security-headers.js';
import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { createRegistryLoaders } from './registry/loaders.js';
import { hubSchema } from './schema/index.js';
import { createMaskError } from './utils/mask-error.js';

export interface AppDeps {
  services: Services;
  authenticator: Authenticator;
  exchange: UpstreamExchange;
  /** tells other hub processes about registry writes */
  changeFeed: ChangeFeed;
  log: Logger;
  metrics: HubMetrics;
  /** true once the database is migrated and while the hub is not draining */
  isReady: () => Promise<boolean>;
  settings: {
    graphiql: boolean;
    introspection: boolean;
    maxRequestBytes: number;
    limits: DocumentLimitsOptions;
  };
}

const EXAMPLE_OPERATION = `# tenant-hub: every request needs "Authorization: Bearer <API key>" (see Headers below).
# An admin registers tenants, systems and bindings; a caller with a grant invokes:

query FirstCall {
  viewer { role caller { id name } }
  invoke(tenantId: "acme", systemId: "crm", params: { path: "/customers/42" }) {
    status ok data requestId
  }
}
`;

function logArgs(args: unknown[]): [string, Record<string, unknown>] {
  const [first, ...rest] = args;
  if (first instanceof Error) return [first.message, { name: first.name, path: (first as { path?: unknown }).path, args: rest }];
  return [String(first), { args: rest }];
}

export function createApp(deps: AppDeps): YogaServerInstance<Record<string, unknown>, HubContext> {
  const { services, authenticator, exchange, log, settings } = deps;
  const noIntrospection: Plugin = { onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule) };
  return createYoga<Record<string, unknown>, HubContext>({
    schema: hubSchema(),
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    landingPage: false,
    // GraphiQL's assets are served by the hub itself: no CDN, so it works in closed networks.
    // Loaded on first use: the bundle is ~27 MB of heap that a hub serving only API calls never needs.
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    graphiql: settings.graphiql && {
      title: 'tenant-hub',
      defaultQuery: EXAMPLE_OPERATION,
      headers: JSON.stringify({ Authorization: 'Bearer <your API key>' }),
    },
    // Enforced by useBodyLimit below, which streams only bodies without a Content-Length.
    maxRequestBodySize: false,
    // No file uploads and no operation batching: JSON documents only.
    multipart: false,
    batching: false,
    maskedErrors: { maskError: createMaskError(log.child('errors')) },
    // Yoga's own log calls: an error is logged by name and message only, never with the excerpt of
    // the document graphql-js appends to String(error) (a document may hold a token literal).
    logging: {
      debug: (...a) => log.debug(...logArgs(a)),
      info: (...a) => log.info(...logArgs(a)),
      warn: (...a) => log.warn(...logArgs(a)),
      error: (...a) => log.error(...logArgs(a)),
    },
    context: async ({ request, req }: { request: Request; req?: { socket?: { remoteAddress?: string } } }) => {
      const principal = await authenticator.authenticate(request.headers.get('authorization'), req?.socket?.remoteAddress);
      const loaders = createRegistryLoaders(services.prisma, services.cache);
      return {
        principal,
        loaders,
        services,
        invoke: (() => {
          const trace = traceOf(request.headers.get('traceparent'));
          return { principal, loaders, dispatcher: createCallDispatcher(exchange, trace), targets: new Map(), trace };
        })(),
      };
    },
    plugins: [
      useBodyLimit(settings.maxRequestBytes),
      useSecurityHeaders(),
      useRequestPolicy(),
      useReadiness({ check: deps.isReady }),
      useMetrics(deps.metrics),
      useRegistryInvalidation(services.cache, deps.changeFeed, log.child('registry')),
      useDocumentLimits(settings.limits),
      useNoSuggestions(),
      ...(settings.introspection ? [] : [noIntrospection]),
    ],
  });
}

// createApp(deps): the Yoga instance with schema, context and plugins, and the invoke fast path
// that shares them; requestListener() is what the HTTP server runs. No listening here.
import type { IncomingMessage, RequestListener } from 'node:http';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { Authenticator } from './access/authenticator.js';
import type { HubContext, Services } from './context.js';
import { createCallDispatcher } from './invoke/call-dispatcher.js';
import type { UpstreamExchange } from './invoke/exchange.js';
import { traceOf } from './invoke/traceparent.js';
import type { Logger } from './log.js';
import { useBodyLimit } from './plugins/use-body-limit.js';
import { documentLimits, useDocumentLimits, type DocumentLimitsOptions } from './plugins/use-document-limits.js';
import { InvokeDocuments } from './http/invoke-documents.js';
import { headerText, InvokeFastPath } from './http/invoke-fast-path.js';
import { useNoSuggestions } from './plugins/use-no-suggestions.js';
import { useReadiness } from './plugins/use-readiness.js';
import { useMetrics } from './plugins/use-metrics.js';
import type { HubMetrics } from './observability/metrics.js';
import { useRequestPolicy } from './plugins/use-request-policy.js';
import { useRegistryInvalidation } from './plugins/use-registry-invalidation.js';
import type { ChangeFeed } from './registry/change-feed.js';
import { useSecurityHeaders } from './plugins/use-security-headers.js';
import { NoSchemaIntrospectionCustomRule, type ValidationRule } from 'graphql';
import { RegistryLoaders } from './registry/loaders.js';
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
    /** serve invoke-only documents on the fast path (default true) */
    fastPath?: boolean;
  };
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, HubContext>;
  /** null when switched off */
  fastPath: InvokeFastPath | null;
  /** the HTTP server's handler: the fast path where it applies, yoga for everything else */
  requestListener: RequestListener;
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

export function createApp(deps: AppDeps): App {
  const { services, authenticator, exchange, log, settings } = deps;
  const limits = documentLimits(settings.limits);
  // The rules yoga adds to graphql's own; the fast path validates with the same list.
  const validationRules: ValidationRule[] = [limits.rule, ...(settings.introspection ? [] : [NoSchemaIntrospectionCustomRule])];
  const maskError = createMaskError(log.child('errors'));
  const schema = hubSchema();
  // One context for both paths: who asks (from the Authorization header), per-request loaders,
  // the call dispatcher and the trace the calls continue.
  const contextFor = async (authorization: string | null, traceparent: string | null, client: string | undefined): Promise<HubContext> => {
    const principal = await authenticator.authenticate(authorization, client);
    const loaders = new RegistryLoaders(services.prisma, services.cache);
    const trace = traceOf(traceparent);
    return {
      principal,
      loaders,
      services,
      invoke: { principal, loaders, dispatcher: createCallDispatcher(exchange, trace), targets: new Map(), trace },
    };
  };
  const yoga = createYoga<Record<string, unknown>, HubContext>({
    schema,
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
    maskedErrors: { maskError },
    // Yoga's own log calls: an error is logged by name and message only, never with the excerpt of
    // the document graphql-js appends to String(error) (a document may hold a token literal).
    logging: {
      debug: (...a) => log.debug(...logArgs(a)),
      info: (...a) => log.info(...logArgs(a)),
      warn: (...a) => log.warn(...logArgs(a)),
      error: (...a) => log.error(...logArgs(a)),
    },
    context: ({ request, req }: { request: Request; req?: { socket?: { remoteAddress?: string } } }) =>
      contextFor(request.headers.get('authorization'), request.headers.get('traceparent'), req?.socket?.remoteAddress),
    plugins: [
      useBodyLimit(settings.maxRequestBytes),
      useSecurityHeaders(),
      useRequestPolicy(),
      useReadiness({ check: deps.isReady }),
      useMetrics(deps.metrics),
      useRegistryInvalidation(services.cache, deps.changeFeed, log.child('registry')),
      useDocumentLimits(limits.parse, validationRules),
      useNoSuggestions(),
    ],
  });
  const fastPath =
    settings.fastPath === false
      ? null
      : new InvokeFastPath({
          schema,
          documents: new InvokeDocuments({ schema, parse: limits.parse, rules: validationRules }),
          contextFor: (req: IncomingMessage) => contextFor(req.headers.authorization ?? null, headerText(req.headers.traceparent), req.socket.remoteAddress),
          // As yoga wraps it: an error replaced by its masked form is logged (by name and message).
          maskError: (error: unknown, message: string) => {
            const masked = maskError(error, message);
            if (masked !== error) log.error(...logArgs([error]));
            return masked;
          },
          maxRequestBytes: settings.maxRequestBytes,
          yoga,
          log: log.child('fast-path'),
          onTaken: (outcome) => deps.metrics.fastPath.inc({ outcome }),
        });
  return {
    yoga,
    fastPath,
    requestListener: fastPath ? (req, res) => void (fastPath.handle(req, res) || yoga(req, res)) : yoga,
  };
}


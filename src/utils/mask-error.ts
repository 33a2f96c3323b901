// Errors leaving the hub: a HubError keeps its message and code; GraphQL's own errors (parse,
// validation) pass; anything else is logged and becomes a masked INTERNAL_SERVER_ERROR, so no
// stack, SQL or Prisma text reaches a client.
import { createGraphQLError } from 'graphql-yoga';
import type { GraphQLError } from 'graphql';
import { HubError } from '../errors.js';
import type { Logger } from '../log.js';
import { isDatabaseUnavailable } from './database-errors.js';

// Duck-typed: the executor may create GraphQLErrors from another copy of graphql-js.
const isGraphQLError = (e: unknown): e is GraphQLError => e instanceof Error && e.name === 'GraphQLError';

function originalOf(error: unknown): unknown {
  let current = error;
  for (let i = 0; i < 5 && isGraphQLError(current) && current.originalError; i++) current = current.originalError;
  return current;
}

export function createMaskError(log: Logger) {
  return (error: unknown, message: string): Error => {
    const original = originalOf(error);
    const path = isGraphQLError(error) ? error.path : undefined;
    if (original instanceof HubError) {
      return createGraphQLError(original.message, { path, extensions: { ...original.extensions, code: original.code } });
    }
    if (isDatabaseUnavailable(original)) {
      log.error('database unavailable', { error: original });
      // Field errors keep HTTP 200 (a document may partly succeed); a request that failed before
      // execution (authentication) gets 503.
      return createGraphQLError('The hub cannot reach its database; retry later.', {
        path,
        extensions: path ? { code: 'SERVICE_UNAVAILABLE' } : { code: 'SERVICE_UNAVAILABLE', http: { status: 503 } },
      });
    }
    if (isGraphQLError(error) && !error.originalError) return error; // parse and validation errors
    // A variable value that does not fit its type: the caller's input, a 400 like validation errors.
    if (isGraphQLError(error) && !path && /^Variable "\$/.test(error.message)) {
      return createGraphQLError(error.message.replace(/ Did you mean .*$/s, ''), { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
    }
    log.error('unexpected error', { error: original, stack: (original as Error)?.stack?.split('\n').slice(0, 8).join('\n') });
    return createGraphQLError(message, { path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };
}

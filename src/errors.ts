// Expected failures carry a code from the public contract (../README.md "Error codes").
// Domain code throws HubError; the GraphQL layer turns it into an error with extensions.code.
// Anything that is not a HubError is masked to INTERNAL_SERVER_ERROR and only logged.

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_AUTH_FAILED'
  | 'UPSTREAM_RESPONSE_TOO_LARGE'
  | 'CIRCUIT_OPEN'
  | 'RATE_LIMITED'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_SERVER_ERROR';

export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const badInput = (message: string) => new HubError('BAD_USER_INPUT', message);
export const notFound = (message: string) => new HubError('NOT_FOUND', message);
export const forbidden = (message = 'Not allowed.') => new HubError('FORBIDDEN', message);

export function isHubError(error: unknown): error is HubError {
  return error instanceof HubError;
}

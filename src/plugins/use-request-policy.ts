// Which HTTP requests reach GraphQL at all. POST bodies must be JSON: a browser cannot send a
// cross-site "simple" request (form or text/plain) that the hub accepts, which closes CSRF even
// before the bearer key is checked.
import type { Plugin } from 'graphql-yoga';

const JSON_BODY = /^application\/(graphql-response\+)?json\s*(;|$)/i;

export function useRequestPolicy({ endpoint = '/graphql' }: { endpoint?: string } = {}): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== endpoint || request.method !== 'POST') return;
      if (JSON_BODY.test(request.headers.get('content-type') ?? '')) return;
      endResponse(
        new fetchAPI.Response(
          JSON.stringify({ errors: [{ message: 'Send GraphQL requests as application/json.', extensions: { code: 'BAD_USER_INPUT' } }] }),
          { status: 415, headers: { 'content-type': 'application/json' } },
        ),
      );
    },
  };
}

// HUB_MAX_REQUEST_BYTES, enforced without streaming every body through a transform. Yoga's own
// limit (maxRequestBodySize) wraps each request body in a TransformStream and a second Request,
// which cost ~5% of an invoke's CPU. Here: a Content-Length over the limit is refused before
// anything is read; a body with a valid Content-Length is framed by Node's HTTP parser (it never
// yields more bytes than announced), so only a body without one (chunked) is read with a count,
// and refused as soon as the count passes the limit.
import { createGraphQLError, type Plugin } from 'graphql-yoga';

const CONTENT_LENGTH = /^\d+$/;

const tooLarge = () =>
  createGraphQLError('Request body too large', { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });

/** Reads at most limit bytes of the body (as text: every parser left reads JSON); 413 beyond. */
async function readCapped(body: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

export function useBodyLimit(limit: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const contentLength = request.headers.get('content-length');
      if (contentLength !== null) {
        // A list or a non-number is refused outright (request smuggling attempts look like that).
        if (!CONTENT_LENGTH.test(contentLength)) {
          throw createGraphQLError('Content-Length header is invalid.', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
        }
        if (Number(contentLength) > limit) throw tooLarge();
        return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser(async (req) => {
        const body = await readCapped(req.body as ReadableStream<Uint8Array>, limit);
        return parse(new fetchAPI.Request(req.url, { method: req.method, headers: req.headers, signal: req.signal, body }));
      });
    },
  };
}

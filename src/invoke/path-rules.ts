// A caller's path stays under the binding's base URL. Everything that could step out of it, or be
// read differently by the called system than by the hub, is refused before any call is made.
import { badInput } from '../errors.js';

const MAX_PATH = 2048;
// RFC 3986 path characters; '%' only as part of a valid escape.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const DECODE_ROUNDS = 3;
/** a "." or ".." segment, with or without ";params" */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:;[^/]*)?(?=\/|$)/;

export function checkPath(path: unknown): string {
  if (typeof path !== 'string') throw badInput('params.path must be a string.');
  if (path.length > MAX_PATH) throw badInput(`params.path is longer than ${MAX_PATH} characters.`);
  if (/[\u0000-\u001f\u007f]/.test(path)) throw badInput('params.path must not contain control characters.');
  if (!path.startsWith('/')) throw badInput('params.path must start with "/".');
  if (path.startsWith('//')) throw badInput('params.path must not start with "//".');
  if (path.includes('\\')) throw badInput('params.path must not contain backslashes.');
  if (path.includes('?') || path.includes('#')) throw badInput('params.path must not contain "?" or "#"; pass query parameters in params.query.');
  if (!PATH_CHARS.test(path)) throw badInput('params.path contains characters that must be percent-encoded.');
  // Look through every layer of encoding a server might peel off (%2e%2e, %252e%252e, ...).
  let layer = path;
  for (let round = 0; round <= DECODE_ROUNDS; round++) {
    // Servers that normalise Unicode read fullwidth or one-dot-leader dots as "." (NFKC). The
    // undecoded path is ASCII (PATH_CHARS), which NFKC leaves as it is.
    if (round > 0) layer = layer.normalize('NFKC');
    // A segment's ";params" are dropped by some servers (Tomcat, Spring): "..;x" is "..".
    if (DOT_SEGMENT.test(layer)) throw badInput('params.path must not contain "." or ".." segments, in any encoding.');
    if (layer.includes('//')) throw badInput('params.path must not contain "//", in any encoding.');
    if (round > 0 && (/[\u0000-\u001f\u007f\\]/.test(layer) || /^[a-z][a-z0-9+.-]*:/i.test(layer.slice(1)))) {
      throw badInput('params.path must not encode control characters, backslashes or a URL scheme.');
    }
    if (!layer.includes('%')) return path;
    try {
      layer = decodeURIComponent(layer);
    } catch {
      throw badInput('params.path has an invalid percent-encoding.');
    }
  }
  throw badInput('params.path is encoded more times than any server decodes.');
}

// Input rules for registry writes. Each failure is BAD_USER_INPUT with a message naming the field.
import { badInput } from '../errors.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// RFC 9110 token characters: what a header name may be made of.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

/** Could a registry row have this id? (An id that could not was never stored.) */
export const isRegistryId = (value: string): boolean => ID.test(value);

export function checkId(field: string, value: string): string {
  if (!ID.test(value)) {
    throw badInput(`${field} must be 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.`);
  }
  return value;
}

export function checkName(field: string, value: string): string {
  const v = value.trim();
  if (v.length < 1 || v.length > 200) throw badInput(`${field} must be 1 to 200 characters.`);
  if (/[\u0000-\u001f\u007f]/.test(v)) throw badInput(`${field} must not contain control characters.`);
  return v;
}

/**
 * A base URL a called system is reached at: http or https, a host, no user info, no query, no
 * fragment. Returned normalised, without a trailing slash, so that `${base}${path}` is exact.
 */
export function checkBaseUrl(field: string, value: string): string {
  const url = checkHttpUrl(field, value);
  const pathname = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${pathname}`;
}

/** An OAuth2 token endpoint: the same rules as a base URL, its path kept as given. */
export function checkTokenUrl(field: string, value: string): string {
  const url = checkHttpUrl(field, value);
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function checkHttpUrl(field: string, value: string): URL {
  if (value.length > 2048) throw badInput(`${field} is longer than 2048 characters.`);
  if (/[\u0000-\u0020\u007f\\]/.test(value)) throw badInput(`${field} must not contain spaces, control characters or backslashes.`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badInput(`${field} is not an absolute URL.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badInput(`${field} must use http or https.`);
  if (url.username || url.password || value.slice(url.protocol.length + 2).split('/')[0]!.includes('@')) {
    throw badInput(`${field} must not contain user info; put credentials in the binding's credential.`);
  }
  if (url.search || value.includes('?')) throw badInput(`${field} must not have a query string.`);
  if (url.hash || value.includes('#')) throw badInput(`${field} must not have a fragment.`);
  if (!url.hostname) throw badInput(`${field} must name a host.`);
  return url;
}

export function checkHeaderName(field: string, value: string): string {
  if (!HEADER_NAME.test(value)) throw badInput(`${field} is not a valid HTTP header name.`);
  return value;
}

export function checkIntRange(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw badInput(`${field} must be an integer from ${min} to ${max}.`);
  return value;
}

/** A path on the called system, as used by batchPath and grant path prefixes. */
export function checkPlainPath(field: string, value: string): string {
  if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/.test(value) || value.length > 1024) {
    throw badInput(`${field} must start with "/" and contain only URL path characters.`);
  }
  if (value.split('/').some((s) => s === '..' || s === '.') || value.includes('//')) {
    throw badInput(`${field} must not contain "." or ".." segments or "//".`);
  }
  return value;
}

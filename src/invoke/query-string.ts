// params.query: a flat object of strings, numbers and booleans (or arrays of them), encoded as
// application/x-www-form-urlencoded with repeated keys for arrays. Keys keep their given order.
import { badInput } from '../errors.js';

type Scalar = string | number | boolean;
const MAX_QUERY = 8192;

function scalar(name: string, v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  throw badInput(`params.query.${name} must be a string, a finite number, a boolean, or an array of them.`);
}

export function encodeQuery(query: unknown): string {
  if (query === undefined || query === null) return '';
  if (typeof query !== 'object' || Array.isArray(query)) throw badInput('params.query must be an object.');
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query as Record<string, Scalar | Scalar[]>)) {
    if (name.length === 0) throw badInput('params.query has an empty parameter name.');
    if (Array.isArray(value)) for (const v of value) params.append(name, scalar(name, v));
    else params.append(name, scalar(name, value));
  }
  const encoded = params.toString();
  if (encoded.length > MAX_QUERY) throw badInput(`params.query encodes to more than ${MAX_QUERY} characters.`);
  return encoded ? `?${encoded}` : '';
}

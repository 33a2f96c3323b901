// The GraphQL documents the benchmark and the profiler send: one invoke, or ten in one document.
import { BATCH_SYSTEM, PLAIN_SYSTEM, SMALL_TENANTS } from './seed.js';

const SELECTION = '{ status ok data }';

export const ONE_DOC = `query One($t: ID!, $s: ID!, $p: InvokeParams!) { invoke(tenantId: $t, systemId: $s, params: $p) ${SELECTION} }`;

/** Ten aliased invoke fields to one system of the first small tenant, at pathOf(0..9). */
export function tenDoc(systemId: string, pathOf: (i: number) => string): string {
  const fields = Array.from({ length: 10 }, (_, i) => `i${i}: invoke(tenantId: "${SMALL_TENANTS[0]}", systemId: "${systemId}", params: { path: "${pathOf(i)}" }) ${SELECTION}`);
  return `query Ten { ${fields.join(' ')} }`;
}

export const oneBody = (tenantId: string, systemId: string, p: string) => JSON.stringify({ query: ONE_DOC, variables: { t: tenantId, s: systemId, p: { path: p } } });

/** The JSON body of the one-invoke document or of a ten-invoke one, as profile.ts and ab.ts send it. */
export function docBody(doc: string): string {
  if (doc === 'one') return oneBody(SMALL_TENANTS[0]!, PLAIN_SYSTEM, '/fast/1');
  const query = doc === 'ten-batch' ? tenDoc(BATCH_SYSTEM, (i) => `/fast/${i}`) : tenDoc(PLAIN_SYSTEM, doc === 'ten-identical' ? () => '/fast/1' : (i) => `/fast/${i}`);
  return JSON.stringify({ query });
}

// The hot path: POST /graphql with a JSON body whose document is only invoke fields, served on
// Node's own request and response objects. Yoga's Fetch-API adapter (a Request and a Response
// object per call, a promise chain per plugin hook) costs more CPU than the hub's own work on a
// warm invoke; this path skips it and does the same thing: the same schema, context, parse and
// validation rules (through InvokeDocuments), error masking and result processing (yoga's own
// processRegularResult for every answer that carries errors) and response headers.
//
// It takes a request only when yoga would treat it as a plain JSON GraphQL request: no Origin
// (CORS), no Content-Encoding, a valid Content-Length within the limit, an Accept it knows.
// Everything else (and every body it cannot run: not JSON, extensions, unknown parameters, a
// document that is not invoke-only or not valid) goes to yoga, which answers exactly as before.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizedExecutor } from '@graphql-tools/executor';
import type { ExecutionResult, GraphQLError, GraphQLSchema } from 'graphql';
import { processRegularResult, type YogaServerInstance } from 'graphql-yoga';
import type { HubContext } from '../context.js';
import type { Logger } from '../log.js';
import { JSON_RESPONSE_SECURITY_HEADERS, securityHeaders } from '../plugins/use-security-headers.js';
import type { InvokeDocuments } from './invoke-documents.js';

/** yoga's default masked-error message */
const UNEXPECTED = 'Unexpected error.';
// Yoga's JSON parser takes "application/json" exactly or followed by ";" (case-sensitive); of
// those, only the plain form and an explicit UTF-8 charset come here.
const isJsonBody = (ct: string | undefined) =>
  ct === 'application/json' || (ct !== undefined && ct.startsWith('application/json;') && /^;\s*charset=utf-8\s*$/i.test(ct.slice(16)));
const CONTENT_LENGTH = /^\d+$/;

// Accept values as yoga negotiates them (of a list, the first type it can answer wins): the common ones only.
const ACCEPTED = new Map<string | undefined, string>([
  [undefined, 'application/json'],
  ['', 'application/json'],
  ['*/*', 'application/json'],
  ['application/json', 'application/json'],
  ['application/graphql-response+json', 'application/graphql-response+json'],
  ['application/graphql-response+json, application/json', 'application/graphql-response+json'],
  ['application/json, application/graphql-response+json', 'application/json'],
]);

export interface InvokeFastPathOptions {
  schema: GraphQLSchema;
  documents: InvokeDocuments;
  /** the same context yoga's requests get */
  contextFor: (req: IncomingMessage) => Promise<HubContext>;
  /** yoga's maskError, logging what it replaces as yoga does */
  maskError: (error: unknown, message: string) => Error;
  maxRequestBytes: number;
  /** where requests this path took but cannot run go, with the body already read */
  yoga: YogaServerInstance<Record<string, unknown>, HubContext>;
  log: Logger;
  /** counts each request taken: run on its operation's plan, served here otherwise, or handed to yoga after its body was read */
  onTaken?: (outcome: FastPathOutcome) => void;
}

export type FastPathOutcome = 'planned' | 'served' | 'yoga';

interface Params {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
}

/** A Node header as the Fetch API reads it: repeated values joined. */
export const headerText = (value: string | string[] | undefined): string | null => (value === undefined ? null : Array.isArray(value) ? value.join(', ') : value);

/** A body yoga would read as one operation with no extensions, or null. */
function paramsOf(body: string): Params | null {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const p = value as Record<string, unknown>;
  for (const key in p) if (p[key] != null && key !== 'query' && key !== 'variables' && key !== 'operationName') return null;
  if (typeof p.query !== 'string') return null;
  if (p.variables != null && (typeof p.variables !== 'object' || Array.isArray(p.variables))) return null;
  if (p.operationName != null && typeof p.operationName !== 'string') return null;
  return p as unknown as Params;
}

/** The body's bytes; Node's parser yields exactly Content-Length of them. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class InvokeFastPath {
  constructor(private readonly opts: InvokeFastPathOptions) {}

  /** Takes the request (true) or leaves it untouched for yoga (false). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || req.url !== '/graphql') return false;
    const h = req.headers;
    const accepted = ACCEPTED.get(h.accept);
    const length = h['content-length'];
    if (
      accepted === undefined ||
      h.origin !== undefined ||
      h['content-encoding'] !== undefined ||
      !isJsonBody(h['content-type']) ||
      length === undefined ||
      !CONTENT_LENGTH.test(length) ||
      Number(length) > this.opts.maxRequestBytes
    ) {
      return false;
    }
    readBody(req).then(
      (body) =>
        this.run(req, res, body, accepted).catch((error: unknown) => {
          this.opts.log.error('invoke fast path failed', { error });
          if (!res.headersSent) res.writeHead(500);
          res.end();
        }),
      () => res.destroy(), // the client went away mid-body: nobody to answer
    );
    return true;
  }

  private async run(req: IncomingMessage, res: ServerResponse, body: Buffer, accepted: string): Promise<void> {
    const params = paramsOf(body.toString('utf8'));
    const operation = params && this.opts.documents.get(params.query, params.operationName ?? undefined);
    if (!params || !operation) {
      this.opts.onTaken?.('yoga');
      return this.toYoga(req, res, body);
    }
    let contextValue: HubContext;
    try {
      contextValue = await this.opts.contextFor(req);
    } catch (error) {
      this.opts.onTaken?.('served');
      return this.sendWithErrors(res, { errors: [this.opts.maskError(error, UNEXPECTED) as GraphQLError] }, accepted);
    }
    const variableValues = params.variables ?? undefined;
    // The operation's plan; without one, or when the variables do not coerce, yoga's executor (not
    // graphql-js's execute): the same errors, and HTTP 400 on variable errors.
    const planned = operation.plan?.execute(contextValue, variableValues) ?? null;
    this.opts.onTaken?.(planned ? 'planned' : 'served');
    const result = (await (planned ??
      normalizedExecutor({ schema: this.opts.schema, document: operation.document, contextValue, variableValues, operationName: params.operationName ?? undefined }))) as ExecutionResult; // a query or mutation without @defer or @stream: one result
    if (result.errors?.length) {
      return this.sendWithErrors(res, { ...result, errors: result.errors.map((e) => this.opts.maskError(e, UNEXPECTED) as GraphQLError) }, accepted);
    }
    const text = JSON.stringify(result);
    res.statusCode = 200;
    res.setHeader('content-type', `${accepted}; charset=utf-8`);
    res.setHeader('content-length', Buffer.byteLength(text));
    for (const [name, value] of JSON_RESPONSE_SECURITY_HEADERS) res.setHeader(name, value);
    res.end(text);
  }

  /** Status and headers from the errors (429 with Retry-After, 400, 503...), as yoga sets them. */
  private async sendWithErrors(res: ServerResponse, result: ExecutionResult, accepted: string): Promise<void> {
    const response = processRegularResult(result, this.opts.yoga.fetchAPI, accepted);
    await send(res, response, true);
  }

  /** Yoga answers a request whose body this path has read (the same bytes). */
  private async toYoga(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const headers: [string, string][] = [];
    for (const [name, value] of Object.entries(req.headers)) {
      const text = headerText(value);
      if (text !== null) headers.push([name, text]);
    }
    // A fixed origin: plugins read only the path, and a Host header is the client's to garble.
    const response = await this.opts.yoga.fetch(`http://localhost${req.url}`, { method: req.method, headers, body }, { req, res });
    await send(res, response, false);
  }
}

/** Writes a Fetch Response; addSecurityHeaders for responses that yoga's plugins did not see. */
async function send(res: ServerResponse, response: Response, addSecurityHeaders: boolean): Promise<void> {
  const text = Buffer.from(await response.arrayBuffer());
  res.statusCode = response.status;
  response.headers.forEach((value, name) => res.setHeader(name, value));
  if (addSecurityHeaders) {
    for (const [name, value] of securityHeaders(response.headers.get('content-type'), response.headers.has('cache-control'))) res.setHeader(name, value);
  }
  res.setHeader('content-length', text.byteLength);
  res.end(text);
}

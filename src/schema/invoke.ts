import type { ReplayableResult } from '../invoke/idempotency-store.js';
import { builder } from './builder.js';
import { HttpMethodEnum } from './enums.js';

const InvokeParams = builder.inputType('InvokeParams', {
  fields: (t) => ({
    method: t.field({ type: HttpMethodEnum, defaultValue: 'GET' }),
    path: t.string({ required: true, description: "Starts with '/'; resolved under the binding's base URL and never leaves it." }),
    query: t.field({ type: 'JSON', description: 'Flat object: string, number or boolean values, or arrays of them.' }),
    headers: t.field({ type: 'JSON', description: 'Flat object of string values; credentials, routing and framing headers are refused.' }),
    body: t.field({ type: 'JSON', description: 'Sent as application/json.' }),
    idempotencyKey: t.string({
      description:
        'Sent upstream as Idempotency-Key; a repeat from the same caller is answered from the stored result (1 to 255 visible ASCII characters).',
    }),
  }),
});

const InvokeResultRef = builder.objectRef<ReplayableResult>('InvokeResult');
InvokeResultRef.implement({
  description: "The called system's answer, whatever its status.",
  fields: (t) => ({
    status: t.exposeInt('status', { description: "The called system's HTTP status." }),
    ok: t.exposeBoolean('ok', { description: 'status in 200..299' }),
    headers: t.expose('headers', { type: 'JSON', description: 'Allow-listed response headers, lower-case names.' }),
    data: t.expose('data', { type: 'JSON', nullable: true, description: 'Parsed JSON body, or the text body as a string; null for an empty body.' }),
    durationMs: t.exposeFloat('durationMs'),
    requestId: t.exposeString('requestId', { description: 'Also sent upstream as X-Request-Id.' }),
    replayed: t.boolean({
      description: 'True when answered from the stored result of an earlier call with the same idempotencyKey (no upstream call was made).',
      resolve: (r) => r.replayed === true,
    }),
  }),
});

const invokeArgs = (t: Parameters<Parameters<typeof builder.queryFields>[0]>[0]) => ({
  tenantId: t.arg.id({ required: true }),
  systemId: t.arg.id({ required: true }),
  params: t.arg({ type: InvokeParams, required: true }),
});

builder.queryFields((t) => ({
  invoke: t.field({
    type: InvokeResultRef,
    // Nullable so that one refused call does not null its siblings: a document with several
    // invoke fields can partly succeed (GraphQL propagates a non-null field's error to the root).
    nullable: true,
    description: 'Safe methods only (GET, HEAD); identical calls in one request are sent once; batched where the system supports it.',
    args: invokeArgs(t),
    resolve: (_, { tenantId, systemId, params }, ctx) =>
      ctx.services.invoker.invokeQuery(ctx.invoke, { tenantId: String(tenantId), systemId: String(systemId), params }),
  }),
}));

builder.mutationFields((t) => ({
  invoke: t.field({
    type: InvokeResultRef,
    nullable: true,
    description: 'Any method; never deduplicated; runs in document order.',
    args: invokeArgs(t as never),
    resolve: (_, { tenantId, systemId, params }, ctx) =>
      ctx.services.invoker.invokeMutation(ctx.invoke, { tenantId: String(tenantId), systemId: String(systemId), params }),
  }),
}));

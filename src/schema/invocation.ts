import { isAdmin } from '../access/principal.js';
import { listInvocations, verifyChain, type ChainVerification } from '../audit/invocations.js';
import type { InvocationEntry } from '../audit/chain.js';
import { badInput, forbidden } from '../errors.js';
import { builder } from './builder.js';
import { HttpMethodEnum } from './enums.js';
import { connectionType } from './pagination.js';

const InvocationRef = builder.objectRef<InvocationEntry>('Invocation');
InvocationRef.implement({
  description: 'The audit record of one invoke, refused or not.',
  fields: (t) => ({
    id: t.exposeID('id'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    callerId: t.exposeID('callerId', { nullable: true }),
    tenantId: t.exposeID('tenantId'),
    systemId: t.exposeID('systemId'),
    method: t.expose('method', { type: HttpMethodEnum }),
    path: t.exposeString('path'),
    status: t.exposeInt('status', { nullable: true, description: 'Upstream status; null when there was no upstream response.' }),
    code: t.exposeString('code', { nullable: true, description: 'null on an upstream answer; else the error code.' }),
    durationMs: t.exposeFloat('durationMs'),
    requestId: t.exposeString('requestId'),
  }),
});

const InvocationConnection = connectionType('Invocation', InvocationRef);

const ChainVerificationRef = builder.objectRef<ChainVerification>('ChainVerification');
ChainVerificationRef.implement({
  fields: (t) => ({
    ok: t.exposeBoolean('ok'),
    checked: t.exposeInt('checked'),
    firstBrokenId: t.exposeID('firstBrokenId', { nullable: true }),
  }),
});

builder.queryFields((t) => ({
  invocations: t.field({
    type: InvocationConnection,
    description: 'Newest first. Filters are optional. Callers see only their own.',
    args: {
      first: t.arg.int({ description: 'At most 500; default 50.' }),
      after: t.arg.string(),
      tenantId: t.arg.id(),
      systemId: t.arg.id(),
      callerId: t.arg.id(),
    },
    resolve: async (_, args, ctx) => {
      if (ctx.principal.disabled) throw forbidden('This caller is disabled.');
      // Records of this very request and earlier ones are written before they are read.
      await ctx.services.audit.flush();
      const own = !isAdmin(ctx.principal);
      return listInvocations(
        ctx.services.prisma,
        {
          tenantId: args.tenantId == null ? null : String(args.tenantId),
          systemId: args.systemId == null ? null : String(args.systemId),
          callerId: own ? ctx.principal.callerId : args.callerId == null ? null : String(args.callerId),
        },
        args.first,
        args.after,
      ).then((page) => (own && args.callerId != null && String(args.callerId) !== ctx.principal.callerId ? { ...page, edges: [], totalCount: 0, pageInfo: { hasNextPage: false, endCursor: null } } : page));
    },
  }),
  verifyInvocationChain: t.field({
    type: ChainVerificationRef,
    authScopes: { admin: true },
    description: "Admin: re-computes the invocation records' hash chain (tamper evidence).",
    resolve: async (_, __, ctx) => {
      await ctx.services.audit.flush();
      return verifyChain(ctx.services.prisma);
    },
  }),
  verifyInvocationChainFrom: t.field({
    type: ChainVerificationRef,
    authScopes: { admin: true },
    description: "Admin: verifyInvocationChain after old records were archived and deleted (retention): the oldest stored record must follow fromHash, the last archived record's hash.",
    args: { fromHash: t.arg.string({ required: true, description: 'A SHA-256 hash: 64 lowercase hex digits.' }) },
    resolve: async (_, args, ctx) => {
      if (!/^[0-9a-f]{64}$/.test(args.fromHash)) throw badInput('fromHash must be a SHA-256 hash: 64 lowercase hex digits.');
      await ctx.services.audit.flush();
      return verifyChain(ctx.services.prisma, args.fromHash);
    },
  }),
}));

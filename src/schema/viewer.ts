import type { Principal } from '../access/principal.js';
import { forbidden } from '../errors.js';
import { loadExisting } from '../registry/loaders.js';
import { builder } from './builder.js';
import { CallerRef } from './caller.js';
import { RoleEnum } from './enums.js';

const ViewerRef = builder.objectRef<Principal>('Viewer');
ViewerRef.implement({
  description: 'Who the API key belongs to.',
  fields: (t) => ({
    role: t.expose('role', { type: RoleEnum }),
    caller: t.field({ type: CallerRef, nullable: true, resolve: (p, _, ctx) => loadExisting(ctx.loaders.caller, p.callerId, 'Caller') }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.field({
    type: ViewerRef,
    resolve: (_, __, ctx) => {
      if (ctx.principal.disabled) throw forbidden('This caller is disabled.');
      return ctx.principal;
    },
  }),
}));

// Registry writes happen only in mutation operations: each one that is more than invoke
// invalidates the process cache before it runs and again once it has finished (committed or not),
// so no request after it is served a value read before it; then the other hub processes are told
// (PostgreSQL NOTIFY), and drop theirs.
import { Kind, type OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ChangeFeed } from '../registry/change-feed.js';
import type { Logger } from '../log.js';
import type { RegistryCache } from '../registry/registry-cache.js';

function writesRegistry(op: OperationDefinitionNode | undefined | null): boolean {
  if (op?.operation !== 'mutation') return false;
  // Any root selection but plain invoke fields (fragments at the root count as writes: cheap to be safe).
  return op.selectionSet.selections.some((s) => s.kind !== Kind.FIELD || s.name.value !== 'invoke');
}

export function useRegistryInvalidation(cache: RegistryCache, feed: ChangeFeed, log: Logger): Plugin {
  return {
    onExecute({ args }) {
      const op = args.document.definitions.find(
        (d: { kind: string; name?: { value: string } }): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && (!args.operationName || d.name?.value === args.operationName),
      );
      if (!writesRegistry(op)) return;
      cache.invalidate();
      return {
        onExecuteDone: () => {
          cache.invalidate();
          // The write has committed (or failed); either way the others re-read. A lost notice is
          // covered by the cache TTL and by the feed's resync after its connection comes back.
          feed.publish().catch((error: unknown) => log.warn('could not announce a registry change to other hub processes', { error }));
        },
      };
    },
  };
}

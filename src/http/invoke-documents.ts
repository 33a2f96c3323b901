// Which GraphQL documents the invoke fast path may run: those made only of invoke fields at the
// root of their operations, parsed and validated with exactly the rules yoga applies. Anything
// else (admin operations, invalid documents, introspection) is left to yoga, which answers with
// its own errors; so the fast path never has to produce a parse or validation error itself.
// Each operation's execution plan (InvokePlan) is compiled on first use and kept with its document.
import { getOperationAST, Kind, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode, type parse, type ValidationRule } from 'graphql';
import { createLRUCache } from 'graphql-yoga';
import { InvokePlan } from './invoke-plan.js';

export interface InvokeDocumentsOptions {
  schema: GraphQLSchema;
  /** yoga's parse (the token limit included) */
  parse: typeof parse;
  /** the rules yoga adds to graphql's specified rules */
  rules: ValidationRule[];
  /** documents remembered, eligible or not (default 500) */
  maxEntries?: number;
  /**
   * longer query texts go to yoga (default 4 KiB: invoke documents are short). With maxEntries it
   * bounds the memory a client can make this cache hold (it is filled before authentication).
   */
  maxQueryLength?: number;
}

/** An eligible document, with the plans of its operations by name (undefined: the only one). */
export interface InvokeDocument {
  document: DocumentNode;
  plans: Map<string | undefined, InvokePlan | null>;
}

/** What the fast path runs: the document, and its operation's plan when it has one. */
export interface RunnableOperation {
  document: DocumentNode;
  plan: InvokePlan | null;
}

const onlyInvokes = (op: OperationDefinitionNode) =>
  (op.operation === 'query' || op.operation === 'mutation') &&
  op.selectionSet.selections.every((s) => s.kind === Kind.FIELD && s.name.value === 'invoke');

export class InvokeDocuments {
  /** query text -> its document when eligible, false when yoga must take it */
  private readonly known;
  private readonly rules: ValidationRule[];
  private readonly maxQueryLength: number;

  constructor(private readonly opts: InvokeDocumentsOptions) {
    this.known = createLRUCache<InvokeDocument | false>({ max: opts.maxEntries ?? 500 });
    this.rules = [...specifiedRules, ...opts.rules];
    this.maxQueryLength = opts.maxQueryLength ?? 4 * 1024;
  }

  /** The document and plan to execute for this operation, or null: yoga handles the request. */
  get(query: string, operationName: string | undefined): RunnableOperation | null {
    if (query.length > this.maxQueryLength) return null;
    let known = this.known.get(query);
    if (known === undefined) {
      const document = this.admit(query);
      known = document && { document, plans: new Map() };
      this.known.set(query, known);
    }
    if (!known) return null;
    // Keyed by the name as given: "" names no operation, which is not the same as giving none.
    let plan = known.plans.get(operationName);
    if (plan === undefined) {
      // A name that matches no operation (or none given for several) is an error yoga words.
      const operation = getOperationAST(known.document, operationName);
      if (!operation) return null;
      plan = InvokePlan.compile(this.opts.schema, known.document, operation);
      known.plans.set(operationName, plan);
    }
    return { document: known.document, plan };
  }

  private admit(query: string): DocumentNode | false {
    let document: DocumentNode;
    try {
      document = this.opts.parse(query);
    } catch {
      return false;
    }
    const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
    if (operations.length === 0 || !operations.every(onlyInvokes)) return false;
    return validate(this.opts.schema, document, this.rules).length === 0 ? document : false;
  }
}

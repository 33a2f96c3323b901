// An execution plan compiled once per invoke-only operation, so that each request of it runs only
// what depends on the request: a generic executor walks the document, looks up fields, builds
// paths and coerces literal arguments again for every field of every request, which cost more
// than the invocation itself once a document holds several invoke fields.
//
// The plan does what @graphql-tools/executor (yoga's executor) does, in the same order and with the
// same errors: query fields run in parallel and mutation fields one after another; a field error
// nulls the invoke field and is located at the field that failed; values are completed with the
// schema's own resolvers and serializers. It covers the shape invoke documents have: root invoke
// fields, each selecting InvokeResult fields with no fragments, directives or repeated response
// names. Any other operation gets no plan (the fast path runs the generic executor), and a request
// whose variables or arguments fail to coerce is handed back before anything ran (null), so that
// the generic executor words the error.
import {
  getArgumentValues,
  getVariableValues,
  GraphQLError,
  isLeafType,
  isNonNullType,
  isObjectType,
  Kind,
  locatedError,
  responsePathAsArray,
  visit,
  BREAK,
  type ExecutionResult,
  type FieldNode,
  type GraphQLField,
  type GraphQLFieldResolver,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type DocumentNode,
} from 'graphql';
import { inspect } from 'graphql/jsutils/inspect.js';
import type { Path } from 'graphql/jsutils/Path.js';

type Resolver = GraphQLFieldResolver<unknown, unknown>;

/** One selected field of the invoke result: a leaf, or __typename. */
interface LeafPlan {
  key: string;
  /** the field's node, as the list resolvers and errors take */
  nodes: readonly FieldNode[];
  name: string;
  field: GraphQLField<unknown, unknown> | null; // null: __typename
  type: GraphQLLeafType;
  nonNull: boolean;
  path: Path;
}

/** One root invoke field. */
interface RootPlan {
  key: string;
  nodes: readonly FieldNode[];
  field: GraphQLField<unknown, unknown>;
  resolve: Resolver;
  /** coerced once when the arguments use no variable */
  args: Record<string, unknown> | null;
  resultType: GraphQLObjectType;
  leaves: LeafPlan[];
  path: Path;
}

const usesVariables = (node: FieldNode) => {
  let found = false;
  visit(node, {
    Variable() {
      found = true;
      return BREAK;
    },
  });
  return found;
};
/**
 * A frozen copy (prototypes kept): literal arguments are shared by every request of the plan, and
 * what the schema owns (input defaults) is left as it is.
 */
function frozenCopy<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy)) as T;
  const copy = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
  for (const key of Object.keys(value)) Object.defineProperty(copy, key, { value: frozenCopy((value as Record<string, unknown>)[key]), enumerable: true });
  return Object.freeze(copy) as T;
}
const isPromise = (v: unknown): v is PromiseLike<unknown> => typeof (v as PromiseLike<unknown> | null)?.then === 'function';

/** As the executor words an error: anything thrown becomes an Error, then a located GraphQLError. */
function coerceError(error: unknown): Error {
  if (error instanceof Error) return error;
  if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string') {
    const coerced = new Error(error.message, 'cause' in error ? { cause: error.cause } : undefined);
    if ('stack' in error && typeof error.stack === 'string') coerced.stack = error.stack;
    if ('name' in error && typeof error.name === 'string') coerced.name = error.name;
    return coerced;
  }
  return new Error(String(error));
}

/** The executor's marker for an error that fails the whole operation (graphql-tools). */
const CRITICAL_ERROR = 'CRITICAL_ERROR';

/** The executor's reading of what a field threw: an AggregateError is one error per inner error. */
const located = (raw: unknown, nodes: readonly FieldNode[], path: Path): GraphQLError[] =>
  (raw instanceof AggregateError ? (raw.errors as unknown[]) : [raw]).map((e) => locatedError(coerceError(e), nodes, responsePathAsArray(path)));

/**
 * graphql-tools' handleFieldError: a nullable field takes the error and becomes null; a non-null
 * one (or a critical error) passes it to its parent.
 */
function handleFieldError(raw: unknown, nodes: readonly FieldNode[], path: Path, nonNull: boolean, errors: GraphQLError[]): null {
  for (const error of located(raw, nodes, path)) {
    if (nonNull || error.extensions?.[CRITICAL_ERROR]) throw error;
    errors.push(error);
  }
  return null;
}

/** graphql-tools' promiseForObject: the object once every promise in it has settled (or one rejected). */
function promiseForObject(object: Record<string, unknown>): unknown {
  const resolved: Record<string, unknown> = Object.create(null);
  const promises: Promise<void>[] = [];
  for (const key in object) {
    const value = object[key];
    if (isPromise(value)) {
      resolved[key] = undefined; // the key keeps its place
      promises.push((value as Promise<unknown>).then((v) => void (resolved[key] = v)));
    } else {
      resolved[key] = value;
    }
  }
  if (!promises.length) return resolved;
  return (promises.length === 1 ? promises[0]! : Promise.all(promises)).then(() => resolved);
}

/**
 * graphql-tools' executeFields: each item's value (or promise) under its key; when one throws while
 * others are pending, the error passes once they have settled (or one rejected).
 */
function executeFields<T extends { key: string }>(items: readonly T[], execute: (item: T, index: number) => unknown): unknown {
  const results: Record<string, unknown> = Object.create(null);
  let containsPromise = false;
  for (let i = 0; i < items.length; i++) {
    try {
      const result = execute(items[i]!, i);
      results[items[i]!.key] = result;
      if (isPromise(result)) containsPromise = true;
    } catch (error) {
      if (containsPromise) {
        const thrown = () => {
          throw error;
        };
        return Promise.resolve(promiseForObject(results)).then(thrown, thrown);
      }
      throw error;
    }
  }
  return containsPromise ? promiseForObject(results) : results;
}

export class InvokePlan {
  private readonly roots: RootPlan[];
  private readonly variableDefinitions;
  private readonly fragments = Object.create(null);

  private constructor(
    private readonly schema: GraphQLSchema,
    private readonly operation: OperationDefinitionNode,
    private readonly rootType: GraphQLObjectType,
    roots: RootPlan[],
  ) {
    this.roots = roots;
    this.variableDefinitions = operation.variableDefinitions ?? [];
  }

  /** The plan of this operation, or null when it has a shape the plan does not cover. */
  static compile(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode): InvokePlan | null {
    if (document.definitions.some((d) => d.kind === Kind.FRAGMENT_DEFINITION) || operation.directives?.length) return null;
    const rootType = operation.operation === 'query' ? schema.getQueryType() : operation.operation === 'mutation' ? schema.getMutationType() : null;
    if (!rootType) return null;
    const roots: RootPlan[] = [];
    const keys = new Set<string>();
    for (const selection of operation.selectionSet.selections) {
      if (selection.kind !== Kind.FIELD || selection.directives?.length) return null;
      const key = selection.alias?.value ?? selection.name.value;
      if (keys.has(key)) return null; // merged fields: left to the executor
      keys.add(key);
      const field = rootType.getFields()[selection.name.value];
      if (!field?.resolve) return null;
      const type = field.type;
      if (isNonNullType(type)) return null; // invoke is nullable; anything else is not planned
      if (!isObjectType(type) || type.isTypeOf || !selection.selectionSet) return null;
      const path: Path = { prev: undefined, key, typename: rootType.name };
      const leaves = InvokePlan.leavesOf(type, selection, path);
      if (!leaves) return null;
      let args: Record<string, unknown> | null = null;
      if (!usesVariables(selection)) {
        try {
          args = frozenCopy(getArgumentValues(field, selection));
        } catch {
          return null;
        }
      }
      roots.push({ key, nodes: [selection], field, resolve: field.resolve, args, resultType: type, leaves, path });
    }
    return roots.length ? new InvokePlan(schema, operation, rootType, roots) : null;
  }

  private static leavesOf(type: GraphQLObjectType, selection: FieldNode, parent: Path): LeafPlan[] | null {
    const leaves: LeafPlan[] = [];
    const keys = new Set<string>();
    const fields = type.getFields();
    for (const s of selection.selectionSet!.selections) {
      if (s.kind !== Kind.FIELD || s.directives?.length || s.arguments?.length || s.selectionSet) return null;
      const key = s.alias?.value ?? s.name.value;
      if (keys.has(key)) return null;
      keys.add(key);
      if (s.name.value === '__typename') {
        leaves.push({ key, nodes: [s], name: '__typename', field: null, type: null as never, nonNull: true, path: { prev: parent, key, typename: type.name } });
        continue;
      }
      const field = fields[s.name.value];
      if (!field) return null;
      const nonNull = isNonNullType(field.type);
      const named = nonNull ? (field.type as { ofType: unknown }).ofType : field.type;
      if (!isLeafType(named)) return null;
      leaves.push({ key, nodes: [s], name: s.name.value, field, type: named, nonNull, path: { prev: parent, key, typename: type.name } });
    }
    return leaves;
  }

  /**
   * Runs the operation, or returns null without running anything when the variables or arguments
   * do not coerce (the generic executor then answers with its own errors).
   */
  execute(contextValue: unknown, rawVariables: Record<string, unknown> | undefined): Promise<ExecutionResult> | null {
    let variables: Record<string, unknown> = {};
    if (this.variableDefinitions.length) {
      const coerced = getVariableValues(this.schema, this.variableDefinitions, rawVariables ?? {}, { maxErrors: 50 });
      if (coerced.errors) return null;
      variables = coerced.coerced;
    }
    const args: Record<string, unknown>[] = [];
    try {
      for (const root of this.roots) args.push(root.args ?? getArgumentValues(root.field, root.nodes[0]!, variables));
    } catch {
      return null;
    }
    const errors: GraphQLError[] = [];
    let run: unknown;
    try {
      run = this.operation.operation === 'mutation' ? this.serially(contextValue, variables, args, errors) : this.inParallel(contextValue, variables, args, errors);
    } catch (error) {
      run = Promise.reject(error);
    }
    // As executeImpl: an error that escaped every field (a critical one) fails the operation.
    return Promise.resolve(run).then(
      (data) => (errors.length === 0 ? { data: data as Record<string, unknown> } : { errors, data: data as Record<string, unknown> }),
      (error: GraphQLError) => {
        errors.push(error);
        return { errors, data: null };
      },
    );
  }

  /** executeFields over the root fields. */
  private inParallel(contextValue: unknown, variables: Record<string, unknown>, args: Record<string, unknown>[], errors: GraphQLError[]): unknown {
    return executeFields(this.roots, (root, i) => this.executeRoot(root, args[i]!, contextValue, variables, errors));
  }

  /** executeFieldsSerially: each mutation field once the previous one has settled. */
  private async serially(contextValue: unknown, variables: Record<string, unknown>, args: Record<string, unknown>[], errors: GraphQLError[]): Promise<unknown> {
    const results: Record<string, unknown> = Object.create(null);
    for (let i = 0; i < this.roots.length; i++) results[this.roots[i]!.key] = await this.executeRoot(this.roots[i]!, args[i]!, contextValue, variables, errors);
    return results;
  }

  /** executeField for one invoke field: its value, or a promise of it. */
  private executeRoot(root: RootPlan, args: Record<string, unknown>, contextValue: unknown, variables: Record<string, unknown>, errors: GraphQLError[]): unknown {
    try {
      const result = root.resolve(undefined, args, contextValue, this.info(root.field, root.nodes, root.path, this.rootType, variables));
      const completed = isPromise(result)
        ? (result as Promise<unknown>).then((resolved) => this.complete(root, resolved, contextValue, variables, errors))
        : this.complete(root, result, contextValue, variables, errors);
      if (isPromise(completed)) {
        return (completed as Promise<unknown>).then(undefined, (raw: unknown) => handleFieldError(raw, root.nodes, root.path, false, errors));
      }
      return completed;
    } catch (raw) {
      return handleFieldError(raw, root.nodes, root.path, false, errors);
    }
  }

  /** completeObjectValue of an InvokeResult: its selected leaves; throws what nulls the invoke field. */
  private complete(root: RootPlan, value: unknown, contextValue: unknown, variables: Record<string, unknown>, errors: GraphQLError[]): unknown {
    if (value instanceof Error) throw value;
    if (value == null) return null;
    return executeFields(root.leaves, (leaf) => this.executeLeaf(root, leaf, value, contextValue, variables, errors));
  }

  /** executeField for one leaf of the result. */
  private executeLeaf(root: RootPlan, leaf: LeafPlan, value: unknown, contextValue: unknown, variables: Record<string, unknown>, errors: GraphQLError[]): unknown {
    try {
      if (leaf.field === null) return root.resultType.name; // __typename
      const result = this.resolveLeaf(root, leaf, value, contextValue, variables);
      if (isPromise(result)) {
        return (result as Promise<unknown>)
          .then((resolved) => this.completeLeaf(root, leaf, resolved))
          .then(undefined, (raw: unknown) => handleFieldError(raw, leaf.nodes, leaf.path, leaf.nonNull, errors));
      }
      return this.completeLeaf(root, leaf, result);
    } catch (raw) {
      return handleFieldError(raw, leaf.nodes, leaf.path, leaf.nonNull, errors);
    }
  }

  private resolveLeaf(root: RootPlan, leaf: LeafPlan, value: unknown, contextValue: unknown, variables: Record<string, unknown>): unknown {
    const field = leaf.field!;
    if (field.resolve) return field.resolve(value, {}, contextValue, this.info(field, leaf.nodes, leaf.path, root.resultType, variables));
    // graphql's default resolver: a property, or a method called like a resolver
    const property = (value as Record<string, unknown>)[leaf.name];
    if (typeof property === 'function') return (property as (...a: unknown[]) => unknown).call(value, {}, contextValue, this.info(field, leaf.nodes, leaf.path, root.resultType, variables));
    return property;
  }

  /** completeValue of a leaf: non-null checked, then serialized. */
  private completeLeaf(root: RootPlan, leaf: LeafPlan, raw: unknown): unknown {
    if (raw instanceof Error) throw raw;
    if (raw == null) {
      if (leaf.nonNull) throw new Error(`Cannot return null for non-nullable field ${root.resultType.name}.${leaf.name}.`);
      return null;
    }
    let serialized: unknown;
    try {
      serialized = leaf.type.serialize(raw);
    } catch (error) {
      // as the executor does: a GraphQLError from a serializer becomes a plain Error
      throw error instanceof GraphQLError ? new Error(error.message) : error;
    }
    if (serialized == null) {
      throw new Error(`Expected \`${inspect(leaf.type)}.serialize(${inspect(raw)})\` to return non-nullable value, returned: ${inspect(serialized)}`);
    }
    return serialized;
  }

  /** The resolve info yoga's executor passes (resolvers here do not read it; plugins may). */
  private info(field: GraphQLField<unknown, unknown>, fieldNodes: readonly FieldNode[], path: Path, parentType: GraphQLObjectType, variables: Record<string, unknown>): GraphQLResolveInfo {
    return {
      fieldName: field.name,
      fieldNodes,
      returnType: field.type,
      parentType,
      path,
      schema: this.schema,
      fragments: this.fragments,
      rootValue: undefined,
      operation: this.operation,
      variableValues: variables,
    };
  }
}

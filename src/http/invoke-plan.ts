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
  node: FieldNode;
  name: string;
  field: GraphQLField<unknown, unknown> | null; // null: __typename
  type: GraphQLLeafType;
  nonNull: boolean;
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

const NO_ARGS = Object.freeze({});
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
/** An object nothing can change: literal arguments are shared by every request of the plan. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
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
      const leaves = InvokePlan.leavesOf(type, selection);
      if (!leaves) return null;
      let args: Record<string, unknown> | null = null;
      if (!usesVariables(selection)) {
        try {
          args = deepFreeze(getArgumentValues(field, selection));
        } catch {
          return null;
        }
      }
      roots.push({ key, nodes: [selection], field, resolve: field.resolve, args, resultType: type, leaves, path: { prev: undefined, key, typename: rootType.name } });
    }
    return roots.length ? new InvokePlan(schema, operation, rootType, roots) : null;
  }

  private static leavesOf(type: GraphQLObjectType, selection: FieldNode): LeafPlan[] | null {
    const leaves: LeafPlan[] = [];
    const keys = new Set<string>();
    const fields = type.getFields();
    for (const s of selection.selectionSet!.selections) {
      if (s.kind !== Kind.FIELD || s.directives?.length || s.arguments?.length || s.selectionSet) return null;
      const key = s.alias?.value ?? s.name.value;
      if (keys.has(key)) return null;
      keys.add(key);
      if (s.name.value === '__typename') {
        leaves.push({ key, node: s, name: '__typename', field: null, type: null as never, nonNull: true });
        continue;
      }
      const field = fields[s.name.value];
      if (!field) return null;
      const nonNull = isNonNullType(field.type);
      const named = nonNull ? (field.type as { ofType: unknown }).ofType : field.type;
      if (!isLeafType(named)) return null;
      leaves.push({ key, node: s, name: s.name.value, field, type: named, nonNull });
    }
    return leaves;
  }

  /**
   * Runs the operation, or returns null without running anything when the variables or arguments
   * do not coerce (the generic executor then answers with its own errors).
   */
  execute(contextValue: unknown, rawVariables: Record<string, unknown> | undefined): Promise<ExecutionResult> | null {
    let variables: Record<string, unknown> = NO_ARGS;
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
    return this.operation.operation === 'mutation' ? this.serially(contextValue, variables, args) : this.inParallel(contextValue, variables, args);
  }

  private async inParallel(contextValue: unknown, variables: Record<string, unknown>, args: Record<string, unknown>[]): Promise<ExecutionResult> {
    const data: Record<string, unknown> = Object.create(null);
    const errors: GraphQLError[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < this.roots.length; i++) {
      const root = this.roots[i]!;
      data[root.key] = null;
      let value: unknown;
      try {
        value = root.resolve(undefined, args[i], contextValue, this.info(root.field, root.nodes, root.path, this.rootType, variables));
      } catch (error) {
        errors.push(this.located(error, root.nodes, root.path));
        continue;
      }
      if (isPromise(value)) {
        pending.push(
          Promise.resolve(value)
            .then((v) => this.complete(root, v, contextValue, variables, errors))
            .then(
              (completed) => void (data[root.key] = completed),
              (error: unknown) => void errors.push(this.located(error, root.nodes, root.path)),
            ),
        );
      } else {
        try {
          const completed = this.complete(root, value, contextValue, variables, errors);
          if (isPromise(completed)) pending.push(Promise.resolve(completed).then((c) => void (data[root.key] = c), (error: unknown) => void errors.push(this.located(error, root.nodes, root.path))));
          else data[root.key] = completed;
        } catch (error) {
          errors.push(this.located(error, root.nodes, root.path));
        }
      }
    }
    if (pending.length) await Promise.all(pending);
    return errors.length === 0 ? { data } : { errors, data };
  }

  private async serially(contextValue: unknown, variables: Record<string, unknown>, args: Record<string, unknown>[]): Promise<ExecutionResult> {
    const data: Record<string, unknown> = Object.create(null);
    const errors: GraphQLError[] = [];
    for (let i = 0; i < this.roots.length; i++) {
      const root = this.roots[i]!;
      try {
        const value = await root.resolve(undefined, args[i], contextValue, this.info(root.field, root.nodes, root.path, this.rootType, variables));
        data[root.key] = await this.complete(root, value, contextValue, variables, errors);
      } catch (error) {
        data[root.key] = null;
        errors.push(this.located(error, root.nodes, root.path));
      }
    }
    return errors.length === 0 ? { data } : { errors, data };
  }

  /** The InvokeResult value as its selection asks; throws what nulls the whole invoke field. */
  private complete(root: RootPlan, value: unknown, contextValue: unknown, variables: Record<string, unknown>, errors: GraphQLError[]): unknown {
    if (value instanceof Error) throw value;
    if (value == null) return null;
    const out: Record<string, unknown> = Object.create(null);
    let later: Promise<void>[] | undefined;
    for (const leaf of root.leaves) {
      if (leaf.field === null) {
        out[leaf.key] = root.resultType.name;
        continue;
      }
      const path: Path = { prev: root.path, key: leaf.key, typename: root.resultType.name };
      let raw: unknown;
      try {
        raw = this.resolveLeaf(root, leaf, value, contextValue, variables, path);
      } catch (error) {
        out[leaf.key] = this.leafError(leaf, path, error, errors);
        continue;
      }
      if (isPromise(raw)) {
        out[leaf.key] = null;
        (later ??= []).push(
          Promise.resolve(raw).then(
            (v) => void (out[leaf.key] = this.completeLeaf(root, leaf, v)),
            (error: unknown) => void (out[leaf.key] = this.leafError(leaf, path, error, errors)),
          ),
        );
        continue;
      }
      try {
        out[leaf.key] = this.completeLeaf(root, leaf, raw);
      } catch (error) {
        out[leaf.key] = this.leafError(leaf, path, error, errors);
      }
    }
    return later ? Promise.all(later).then(() => out) : out;
  }

  private resolveLeaf(root: RootPlan, leaf: LeafPlan, value: unknown, contextValue: unknown, variables: Record<string, unknown>, path: Path): unknown {
    const field = leaf.field!;
    if (field.resolve) return field.resolve(value, NO_ARGS, contextValue, this.info(field, [leaf.node], path, root.resultType, variables));
    // graphql's default resolver: a property, or a method called like a resolver
    const property = (value as Record<string, unknown>)[leaf.name];
    if (typeof property === 'function') return (property as (...a: unknown[]) => unknown).call(value, NO_ARGS, contextValue, this.info(field, [leaf.node], path, root.resultType, variables));
    return property;
  }

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

  /** A leaf's error: nulls a nullable leaf, or (thrown, located at the leaf) the invoke field. */
  private leafError(leaf: LeafPlan, path: Path, error: unknown, errors: GraphQLError[]): null {
    const located = this.located(error, [leaf.node], path);
    if (leaf.nonNull) throw located;
    errors.push(located);
    return null;
  }

  private located(error: unknown, nodes: readonly FieldNode[], path: Path): GraphQLError {
    return locatedError(coerceError(error), nodes, pathToArray(path));
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

function pathToArray(path: Path): (string | number)[] {
  const keys: (string | number)[] = [];
  for (let p: Path | undefined = path; p; p = p.prev) keys.push(p.key);
  return keys.reverse();
}

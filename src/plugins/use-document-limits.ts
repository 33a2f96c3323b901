// Bounds on what one GraphQL document may ask for, checked at parse and validation time, so an
// abusive document is refused before any resolver runs and before any call goes out.
import { GraphQLError, Kind, parse, type ASTVisitor, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext, type ValidationRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface DocumentLimitsOptions {
  /** deepest selection nesting (default 12) */
  maxDepth?: number;
  /** aliased fields in one document (default 30) */
  maxAliases?: number;
  /** invoke fields in one document, fragments expanded (default 50) */
  maxInvokes?: number;
  /** lexical tokens in one document (default 2000) */
  maxTokens?: number;
}

interface Measure {
  depth: number;
  aliases: number;
  invokes: number;
}

const badInput = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });

/** Walks a selection set, expanding fragments (each cycle cut off: validation reports it). */
function measure(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, depth: number, seen: Set<string>, m: Measure, limits: Required<DocumentLimitsOptions>) {
  if (depth > m.depth) m.depth = depth;
  // Stop early: once any limit is exceeded the document is refused anyway.
  if (m.depth > limits.maxDepth || m.aliases > limits.maxAliases || m.invokes > limits.maxInvokes) return;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      if (sel.alias) m.aliases++;
      if (sel.name.value === 'invoke') m.invokes++;
      if (sel.selectionSet) measure(sel.selectionSet, fragments, depth + 1, seen, m, limits);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      measure(sel.selectionSet, fragments, depth, seen, m, limits);
    } else {
      const frag = fragments.get(sel.name.value);
      if (frag && !seen.has(frag.name.value)) {
        seen.add(frag.name.value);
        measure(frag.selectionSet, fragments, depth, seen, m, limits);
        seen.delete(frag.name.value);
      }
    }
  }
}

export function measureDocument(doc: DocumentNode, limits: Required<DocumentLimitsOptions>): Measure {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of doc.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const total: Measure = { depth: 0, aliases: 0, invokes: 0 };
  for (const def of doc.definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION) continue;
    const m: Measure = { depth: 0, aliases: 0, invokes: 0 };
    measure(def.selectionSet, fragments, 1, new Set(), m, limits);
    total.depth = Math.max(total.depth, m.depth);
    total.aliases = Math.max(total.aliases, m.aliases);
    total.invokes = Math.max(total.invokes, m.invokes);
  }
  return total;
}

/** The token-limited parse and the validation rule: used by the plugin and by the invoke fast path. */
export function documentLimits(opts: DocumentLimitsOptions = {}): { parse: typeof parse; rule: ValidationRule } {
  const limits: Required<DocumentLimitsOptions> = {
    maxDepth: opts.maxDepth ?? 12,
    maxAliases: opts.maxAliases ?? 30,
    maxInvokes: opts.maxInvokes ?? 50,
    maxTokens: opts.maxTokens ?? 2000,
  };
  const rule = (context: ValidationContext): ASTVisitor => ({
    Document(node) {
      const m = measureDocument(node, limits);
      if (m.depth > limits.maxDepth) context.reportError(badInput(`The document nests deeper than ${limits.maxDepth} levels.`));
      if (m.aliases > limits.maxAliases) context.reportError(badInput(`The document uses more than ${limits.maxAliases} aliases.`));
      if (m.invokes > limits.maxInvokes) context.reportError(badInput(`The document has more than ${limits.maxInvokes} invoke fields.`));
      return false; // one pass over the whole document is enough
    },
  });
  const parseLimited: typeof parse = (source, options) => {
    try {
      return parse(source, { ...options, maxTokens: limits.maxTokens });
    } catch (error) {
      if (error instanceof GraphQLError && /token limit|more th\w+ \d+ tokens/i.test(error.message)) {
        throw badInput(`The document has more than ${limits.maxTokens} tokens.`);
      }
      throw error;
    }
  };
  return { parse: parseLimited, rule };
}

/**
 * The token-limited parse, and the validation rules yoga adds to graphql's (the limits' rule among
 * them): built once by the caller, which hands the same ones to the invoke fast path. Yoga's parser
 * cache answers repeated documents before this parser is reached, and its validation cache keeps
 * the rules' verdict per document.
 */
export function useDocumentLimits(parseLimited: typeof parse, rules: readonly ValidationRule[]): Plugin {
  return {
    onParse({ setParseFn }) {
      setParseFn(parseLimited);
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
    },
  };
}

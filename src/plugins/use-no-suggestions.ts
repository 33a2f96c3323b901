// Validation messages such as 'Cannot query field "tenantz". Did you mean "tenants"?' describe
// the schema to whoever sends a wrong guess. With introspection off they are cut to the first sentence.
import type { Plugin } from 'graphql-yoga';
import { GraphQLError } from 'graphql';

type AfterValidate = Exclude<ReturnType<NonNullable<Plugin['onValidate']>>, void>;

// One function for every request (the hook runs on each, cached validation or not).
const cutSuggestions: AfterValidate = ({ result, setResult }) => {
  if (!result.some((e) => / Did you mean /.test(e.message))) return;
  setResult(
    result.map((e) =>
      / Did you mean /.test(e.message) ? new GraphQLError(e.message.replace(/ Did you mean .*$/s, ''), { nodes: e.nodes, extensions: e.extensions }) : e,
    ),
  );
};

export function useNoSuggestions(): Plugin {
  return {
    onValidate: () => cutSuggestions,
  };
}

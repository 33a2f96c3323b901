// Typed clients from the committed schema.graphql (`npm run codegen`). The example client in
// examples/ uses the generated types; the test suite checks they are current and type-check.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['examples/**/*.ts', '!examples/generated/**'],
  ignoreNoDocuments: false,
  generates: {
    'examples/generated/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        emitLegacyCommonJSImports: false,
        useTypeImports: true,
        scalars: { JSON: 'unknown', DateTime: 'string' },
        enumsAsTypes: true,
      },
    },
  },
};

export default config;

// Importing each type file registers it with the builder; toSchema() then builds the schema once.
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.js';
import './enums.js';
import './tenant.js';
import './system.js';
import './binding.js';
import './caller.js';
import './api-key.js';
import './grant.js';
import './invoke.js';
import './invocation.js';
import './viewer.js';

let schema: GraphQLSchema | undefined;

export function hubSchema(): GraphQLSchema {
  schema ??= builder.toSchema();
  return schema;
}

/** The committed schema.graphql: sorted, so that the file only changes when the schema does. */
export function printHubSchema(): string {
  return printSchema(lexicographicSortSchema(hubSchema())) + '\n';
}

// A typed client for tenant-hub: operations are checked against schema.graphql at build time.
//   npm run codegen   # after changing an operation here or the schema
//   HUB_URL=http://127.0.0.1:4000 HUB_API_KEY=thub_... npx tsx examples/invoke-client.ts
import { print } from 'graphql';
import { graphql } from './generated/gql.js';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';

export const InvokeDocument = graphql(`
  query Invoke($tenantId: ID!, $systemId: ID!, $params: InvokeParams!) {
    invoke(tenantId: $tenantId, systemId: $systemId, params: $params) {
      status
      ok
      data
      requestId
    }
  }
`);

export const ViewerDocument = graphql(`
  query Viewer {
    viewer {
      role
      caller {
        id
        name
      }
    }
  }
`);

export class HubClient {
  constructor(
    private readonly url: string,
    private readonly apiKey: string,
  ) {}

  async request<R, V>(document: TypedDocumentNode<R, V>, variables: V): Promise<R> {
    const res = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.apiKey}` },
      body: JSON.stringify({ query: print(document), variables }),
    });
    const body = (await res.json()) as { data?: R; errors?: { message: string; extensions?: { code?: string } }[] };
    if (body.errors?.length) {
      const e = body.errors[0]!;
      throw new Error(`${e.extensions?.code ?? 'ERROR'}: ${e.message}`);
    }
    return body.data as R;
  }
}

async function main() {
  const client = new HubClient(process.env.HUB_URL ?? 'http://127.0.0.1:4000', process.env.HUB_API_KEY ?? '');
  const { viewer } = await client.request(ViewerDocument, {});
  console.log(`signed in as ${viewer.caller?.name ?? '?'} (${viewer.role})`);
  const { invoke } = await client.request(InvokeDocument, {
    tenantId: process.argv[2] ?? 'acme',
    systemId: process.argv[3] ?? 'crm',
    params: { path: process.argv[4] ?? '/' },
  });
  // invoke is null only together with an error, which request() has already thrown.
  if (!invoke) throw new Error('no result');
  // `invoke.status` is a number and `invoke.ok` a boolean here: the compiler knows the schema.
  console.log(invoke.status, invoke.ok, JSON.stringify(invoke.data));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

// The reference point of issue 5: a plain graphql-yoga server whose resolver calls `fetch` with a
// bearer token, and nothing else (no auth, no registry, no audit). Run as its own process, pinned
// like the hub. Env: BENCH_UPSTREAM_URL, BENCH_TOKEN, BENCH_PORT; prints "READY <port>".
import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';
import { serveAsChild } from './child.js';

const upstream = process.env.BENCH_UPSTREAM_URL ?? 'http://127.0.0.1:1';
const token = process.env.BENCH_TOKEN ?? 'token';

const schema = createSchema({
  typeDefs: /* GraphQL */ `
    scalar JSON
    type Result { status: Int!, ok: Boolean!, data: JSON }
    type Query { call(path: String!): Result }
  `,
  resolvers: {
    Query: {
      call: async (_: unknown, { path }: { path: string }) => {
        const res = await fetch(upstream + path, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
        return { status: res.status, ok: res.ok, data: await res.json() };
      },
    },
  },
});

const yoga = createYoga({ schema, logging: false, graphiql: false });
const server = createServer(yoga);
serveAsChild(server, Number(process.env.BENCH_PORT ?? 0));

// Shared by the attack suites in test/security/ (tenant isolation, API keys, quotas): GraphQL over
// HTTP from a chosen loopback client address, polling with a deadline, and small registry helpers.
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as ufetch } from 'undici';
import { expect } from 'vitest';
import type { GqlResponse, TestHub } from './test-hub.js';
import type { Upstream } from './upstream.js';

/**
 * A GraphQL client whose connections come from `localAddress` (any 127.x.y.z on Linux loopback),
 * so a hub sees a different client address per client.
 *
 * undici's `localAddress` must be given as a Client/Agent option: a `connect: { localAddress }`
 * is silently overwritten by the Client's own (null) localAddress in undici's connector.
 */
export interface AddressedClient {
  localAddress: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>, opts?: { key?: string | null; headers?: Record<string, string> }): Promise<GqlResponse<T>>;
  close(): Promise<void>;
}

export function clientFrom(hub: TestHub, localAddress: string): AddressedClient {
  const agent = new Agent({ localAddress, keepAliveTimeout: 1000 });
  return {
    localAddress,
    gql: async (query, variables, o = {}) => {
      const res = await ufetch(`${hub.url}/graphql`, {
        dispatcher: agent,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json',
          ...(o.key ? { authorization: `Bearer ${o.key}` } : {}),
          ...o.headers,
        },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      let body: GqlResponse['body'];
      try {
        body = JSON.parse(text) as GqlResponse['body'];
      } catch {
        body = { errors: [{ message: `non-JSON answer: ${text.slice(0, 200)}` }] };
      }
      return { status: res.status, headers: res.headers as unknown as Headers, body };
    },
    close: () => agent.close(),
  };
}

/** Polls `probe` until it returns a truthy value; fails the test after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, timeoutMs = 5000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Requests an upstream received since a snapshot of its length, as "METHOD url". */
export function sentSince(up: Upstream, before: number): string[] {
  return up.requests.slice(before).map((r) => `${r.method} ${r.url}`);
}

/** The caller's own invocation records (newest first), read with its key or the admin's. */
export async function invocationsOf(hub: TestHub, callerId: string, first = 500) {
  const res = await hub.gql(
    `query($c: ID, $first: Int) { invocations(first: $first, callerId: $c) { totalCount edges { node { id callerId tenantId systemId method path status code requestId } } } }`,
    { c: callerId, first },
  );
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  const c = res.body.data.invocations;
  return { totalCount: c.totalCount as number, nodes: c.edges.map((e: any) => e.node) as any[] };
}

/** Issues a further key for a caller; returns the key and its ApiKey row as GraphQL shows it. */
export async function issueKey(hub: TestHub, callerId: string, expiresAt?: string) {
  const d = await hub.admin(
    `mutation($c: ID!, $e: DateTime) { issueApiKey(callerId: $c, expiresAt: $e) { apiKey key { id prefix createdAt lastUsedAt revokedAt expiresAt } } }`,
    { c: callerId, e: expiresAt ?? null },
  );
  return d.issueApiKey as { apiKey: string; key: { id: string; prefix: string; createdAt: string; lastUsedAt: string | null; revokedAt: string | null; expiresAt: string | null } };
}

/** All errors of a response with their codes and paths, for documents that partly succeed. */
export function errorsByPath(res: GqlResponse): Record<string, { code: string; message: string; extensions: Record<string, any> }> {
  const out: Record<string, { code: string; message: string; extensions: Record<string, any> }> = {};
  for (const e of res.body.errors ?? []) out[(e.path ?? ['<request>']).join('.')] = { code: e.extensions?.code, message: e.message, extensions: e.extensions ?? {} };
  return out;
}

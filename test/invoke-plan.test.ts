// The compiled plan of an invoke operation (src/http/invoke-plan.ts) gives what yoga's executor
// gives for the same document, context and variables. test/fast-path.test.ts compares the two over
// HTTP with real hubs; here the invoke resolver's results are chosen, so that the answers no real
// invocation returns (a null in a non-null field, a value a scalar refuses, a rejection that is no
// Error) are compared too.
import { normalizedExecutor } from '@graphql-tools/executor';
import { getOperationAST, GraphQLError, parse, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { InvokePlan } from '../src/http/invoke-plan.js';
import { hubSchema } from '../src/schema/index.js';

const schema = hubSchema();

type Answer = (args: { tenantId: string; systemId: string; params: Record<string, unknown> }) => unknown;

/** A context whose invoker answers each call with `answer`, and records the calls in order. */
function contextWith(answer: Answer) {
  const calls: string[] = [];
  const invoke = (_scope: unknown, args: { tenantId: string; systemId: string; params: Record<string, unknown> }) => {
    calls.push(String(args.params.path));
    return answer(args);
  };
  return { calls, context: { services: { invoker: { invokeQuery: invoke, invokeMutation: invoke } }, invoke: {} } };
}

function planOf(query: string, operationName?: string) {
  const document = parse(query);
  return InvokePlan.compile(schema, document, getOperationAST(document, operationName)!);
}

/** Both ways, each with its own context; the JSON texts (what the client reads) and the call orders. */
async function both(query: string, answer: Answer, variables?: Record<string, unknown>) {
  const plan = planOf(query);
  expect(plan).not.toBeNull();
  const viaPlan = contextWith(answer);
  const plannedResult = (await plan!.execute(viaPlan.context, variables)) as ExecutionResult;
  const planned = JSON.stringify(plannedResult);
  const viaExecutor = contextWith(answer);
  const executed = (await normalizedExecutor({ schema, document: parse(query), contextValue: viaExecutor.context, variableValues: variables })) as ExecutionResult;
  return { planned, plannedResult, executed: JSON.stringify(executed), plannedCalls: viaPlan.calls, executedCalls: viaExecutor.calls };
}

const ALL = '{ __typename status ok headers data durationMs requestId replayed }';
const good = (path: unknown) => ({ status: 200, ok: true, headers: { 'content-type': 'application/json' }, data: { path }, durationMs: 1.5, requestId: 'r-1' });
const later = <T>(ms: number, value: () => T) => new Promise<T>((resolve, reject) => setTimeout(() => { try { resolve(value()); } catch (e) { reject(e); } }, ms));

const ANOMALIES: [string, Answer][] = [
  ['a full answer', ({ params }) => Promise.resolve(good(params.path))],
  ['a synchronous answer', ({ params }) => good(params.path)],
  ['a synchronous throw', () => { throw new Error('thrown at once'); }],
  ['a rejection', () => Promise.reject(new Error('rejected'))],
  ['a rejection that is not an Error', () => Promise.reject({ message: 'plain object', name: 'Odd' })],
  ['a rejection with a string', () => Promise.reject('just text')],
  ['null', () => Promise.resolve(null)],
  ['an Error returned as the value', () => Promise.resolve(new Error('returned, not thrown'))],
  ['null in a non-null field', ({ params }) => Promise.resolve({ ...good(params.path), status: null })],
  ['a value Int refuses', ({ params }) => Promise.resolve({ ...good(params.path), status: 'teapot' })],
  ['a value Float refuses', ({ params }) => Promise.resolve({ ...good(params.path), durationMs: 'slow' })],
  ['no data (nullable)', ({ params }) => Promise.resolve({ ...good(params.path), data: undefined })],
  ['replayed (a field with its own resolver)', ({ params }) => Promise.resolve({ ...good(params.path), replayed: true })],
  ['a method where a value should be', ({ params }) => Promise.resolve({ ...good(params.path), requestId: () => 'from a method' })],
  ['a leaf that is a promise', ({ params }) => Promise.resolve({ ...good(params.path), requestId: Promise.resolve('later') })],
  ['a leaf whose promise rejects', ({ params }) => Promise.resolve({ ...good(params.path), data: Promise.reject(new Error('leaf failed')) })],
  ['an AggregateError rejection (one error per inner error)', () => Promise.reject(new AggregateError([new Error('connect ECONNREFUSED ::1:80'), new Error('connect ECONNREFUSED 127.0.0.1:80')], 'all failed'))],
  ['an AggregateError thrown at once', () => { throw new AggregateError([new Error('e1'), new Error('e2')], 'both'); }],
  ['a critical error (fails the whole operation)', () => Promise.reject(new GraphQLError('critical', { extensions: { CRITICAL_ERROR: true } }))],
  ['a critical error thrown at once', () => { throw new GraphQLError('critical', { extensions: { CRITICAL_ERROR: true } }); }],
  ['a value that is not an object', () => Promise.resolve('just a string')],
];

describe('an invoke plan answers as the executor does', () => {
  const ONE = `query One($p: InvokeParams!) { invoke(tenantId: "acme", systemId: "crm", params: $p) ${ALL} }`;

  it.each(ANOMALIES)('for %s', async (_name, answer) => {
    const r = await both(ONE, answer, { p: { path: '/one' } });
    expect(r.planned).toBe(r.executed);
    // and nothing is added to the answer once it is given
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(JSON.stringify(r.plannedResult)).toBe(r.planned);
  });

  it('for a nullable leaf still pending when a non-null one after it fails (and adds nothing once answered)', async () => {
    const doc = '{ invoke(tenantId: "t", systemId: "s", params: { path: "/p" }) { data status } }';
    const r = await both(doc, ({ params }) => Promise.resolve({ ...good(params.path), data: later(15, () => { throw new Error('late leaf'); }), status: null }));
    expect(r.planned).toBe(r.executed);
    expect(JSON.parse(r.planned).errors.map((e: { path: string[] }) => e.path.join('.'))).toEqual(['invoke.data', 'invoke.status']);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(JSON.stringify(r.plannedResult)).toBe(r.planned);
  });

  it('for a critical error beside fields that succeed, and a leaf failing later than its sibling field', async () => {
    const doc = '{ a: invoke(tenantId: "t", systemId: "s", params: { path: "/a" }) { status data } b: invoke(tenantId: "t", systemId: "s", params: { path: "/b" }) { status } }';
    const leafThenRoot = await both(doc, ({ params }) => (params.path === '/a' ? Promise.resolve({ ...good('/a'), data: Promise.reject(new Error('leaf a')) }) : Promise.reject(new Error('root b'))));
    expect(leafThenRoot.planned).toBe(leafThenRoot.executed);
    const critical = await both(doc, ({ params }) => (params.path === '/a' ? Promise.reject(new GraphQLError('critical', { extensions: { CRITICAL_ERROR: true } })) : good('/b')));
    expect(critical.planned).toBe(critical.executed);
    expect(JSON.parse(critical.planned).data).toBeNull();
  });

  it('for several fields that fail at different times, in the order they fail', async () => {
    const doc = `{ ${['/a', '/b', '/c', '/d', '/e'].map((p, i) => `f${i}: invoke(tenantId: "t", systemId: "s", params: { path: "${p}" }) { status ok }`).join(' ')} }`;
    const delays: Record<string, number> = { '/a': 30, '/b': 0, '/c': 10, '/d': 20, '/e': 0 };
    const r = await both(doc, ({ params }) => {
      const p = String(params.path);
      if (p === '/e') throw new Error('sync');
      return later(delays[p]!, () => (p === '/c' ? good(p) : p === '/d' ? { ...good(p), status: null } : (() => { throw new Error(`late ${p}`); })()));
    });
    expect(r.planned).toBe(r.executed);
    expect(JSON.parse(r.planned).errors.map((e: { path: string[] }) => e.path.join('.'))).toEqual(['f4', 'f1', 'f3.status', 'f0']);
  });

  it('runs mutation fields one after another, each after the previous one settled', async () => {
    const doc = `mutation { a: invoke(tenantId: "t", systemId: "s", params: { method: POST, path: "/1" }) { status } b: invoke(tenantId: "t", systemId: "s", params: { method: POST, path: "/2" }) { status } c: invoke(tenantId: "t", systemId: "s", params: { method: POST, path: "/3" }) { status } }`;
    const events: string[] = [];
    const r = await both(doc, ({ params }) => {
      const p = String(params.path);
      events.push(`start ${p}`);
      return later(p === '/1' ? 20 : 1, () => {
        events.push(`end ${p}`);
        if (p === '/2') throw new Error('second failed');
        return good(p);
      });
    });
    expect(r.planned).toBe(r.executed);
    expect(events.slice(0, 6)).toEqual(['start /1', 'end /1', 'start /2', 'end /2', 'start /3', 'end /3']);
  });

  it('coerces literal arguments once and shares them, frozen, between requests', async () => {
    const doc = '{ invoke(tenantId: "acme", systemId: "crm", params: { path: "/lit", query: { tags: ["a"] } }) { status } }';
    const plan = planOf(doc)!;
    const seen: Record<string, unknown>[] = [];
    const { context } = contextWith(({ params }) => {
      seen.push(params);
      return good(params.path);
    });
    await plan.execute(context, undefined);
    await plan.execute(context, undefined);
    expect(seen[0]).toBe(seen[1]);
    expect(seen[0]).toEqual({ method: 'GET', path: '/lit', query: { tags: ['a'] } });
    expect(Object.isFrozen(seen[0]) && Object.isFrozen((seen[0]!.query as { tags: string[] }).tags)).toBe(true);
  });

  it('hands back, before anything ran, a request whose variables do not coerce', async () => {
    const plan = planOf('query One($p: InvokeParams!) { invoke(tenantId: "acme", systemId: "crm", params: $p) { status } }')!;
    const { context, calls } = contextWith(() => good('/x'));
    expect(plan.execute(context, { p: { path: 5 } })).toBeNull();
    expect(plan.execute(context, {})).toBeNull();
    expect(plan.execute(context, { p: { path: '/x', method: 'BREW' } })).toBeNull();
    expect(calls).toEqual([]);
    expect(plan.execute(context, { p: { path: '/x' } })).not.toBeNull();
  });

  it.each([
    ['a fragment spread', 'query { invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { ...F } } fragment F on InvokeResult { status }'],
    ['an inline fragment', 'query { invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { ... on InvokeResult { status } } }'],
    ['a directive on a leaf', 'query { invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { status @include(if: true) } }'],
    ['a directive on the invoke field', 'query { invoke(tenantId: "a", systemId: "b", params: { path: "/" }) @skip(if: false) { status } }'],
    ['a response name used twice at the root', 'query { x: invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { status } x: invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { ok } }'],
    ['a response name used twice in the result', 'query { invoke(tenantId: "a", systemId: "b", params: { path: "/" }) { status status } }'],
    ['a field that is not invoke', 'query { viewer { role } }'],
  ])('compiles no plan for %s (the executor runs it)', (_name, doc) => {
    expect(planOf(doc)).toBeNull();
  });
});

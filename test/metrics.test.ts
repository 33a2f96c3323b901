// /metrics after known traffic: the counters say what happened.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from './helpers/databases.js';
import { createCallerWithGrant, INVOKE_QUERY, seedExclusive } from './helpers/seed.js';
import { startTestHub, type TestHub } from './helpers/test-hub.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}
function labelled(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe.each(testDatabases())('metrics on %s', (kind) => {
  let hub: TestHub;
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
    hub = await startTestHub(kind);
    await seedExclusive(hub, { tenantId: 'a', systemId: 's', baseUrl: upstream.url });
  });
  afterAll(async () => {
    await hub?.close();
    await upstream?.close();
  });

  it('counts invocations by outcome, upstream requests and SQL statements', async () => {
    const key = await createCallerWithGrant(hub, { id: 'm', grants: [{ tenantId: 'a' }] });
    const before = await (await fetch(`${hub.url}/metrics`)).text();
    for (let i = 0; i < 3; i++) await hub.gql(INVOKE_QUERY, { t: 'a', s: 's', p: { path: `/m${i}` } }, { key });
    await hub.gql(INVOKE_QUERY, { t: 'other', s: 's', p: { path: '/x' } }, { key }); // FORBIDDEN
    const res = await fetch(`${hub.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const after = await res.text();
    expect(labelled(after, 'hub_invocations_total', 'tenant="a",system="s",outcome="ok"') - labelled(before, 'hub_invocations_total', 'tenant="a",system="s",outcome="ok"')).toBe(3);
    expect(labelled(after, 'hub_invocations_total', 'tenant="",system="",outcome="FORBIDDEN"') - labelled(before, 'hub_invocations_total', 'tenant="",system="",outcome="FORBIDDEN"')).toBe(1);
    // Unknown ids from a caller never become label values.
    expect(after).not.toContain('tenant="other"');
    expect(metric(after, 'hub_upstream_requests_total') - metric(before, 'hub_upstream_requests_total')).toBe(3);
    expect(metric(after, 'hub_db_queries_total')).toBeGreaterThan(0);
    expect(metric(after, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(after).toContain('hub_invoke_duration_seconds_bucket');
    expect(metric(after, 'hub_upstream_duration_seconds_count') - (metric(before, 'hub_upstream_duration_seconds_count') || 0)).toBe(3);
    expect(after).not.toMatch(/thub_|Bearer/);
  });
});

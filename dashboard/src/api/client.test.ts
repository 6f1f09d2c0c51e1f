import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiProblem, api, query, violationsByField, type Violation } from './client';

const violation = (field: string, policy: string): Violation => ({
  field,
  policy,
  policy_version: 2,
  constraint: 'c',
  actual: 'a',
  message: `${policy} broken`,
});

afterEach(() => vi.unstubAllGlobals());

describe('the API client', () => {
  it('groups violations by the field they name', () => {
    const grouped = violationsByField([
      violation('replication_factor', 'min_replication_factor'),
      violation('replication_factor', 'replication_factor_at_most_brokers'),
      violation('config.retention.ms', 'retention_ms'),
    ]);
    expect(Object.keys(grouped).sort()).toEqual(['config.retention.ms', 'replication_factor']);
    expect(grouped.replication_factor?.map((v) => v.policy)).toEqual([
      'min_replication_factor',
      'replication_factor_at_most_brokers',
    ]);
  });

  it('builds query strings without empty filters', () => {
    expect(query({ status: 'READY', provider: '', region: undefined, page_size: 100 })).toBe('?status=READY&page_size=100');
    expect(query({ a: '' })).toBe('');
  });

  it('turns a problem document into an ApiProblem and marks requests as the dashboard channel', async () => {
    const fakeFetch = vi.fn(async (_url: string, _init: RequestInit) =>
      new Response(
        JSON.stringify({ code: 'POLICY_VIOLATION', detail: 'breaks 1 rule', status: 422, violations: [violation('brokers', 'brokers')] }),
        { status: 422, headers: { 'content-type': 'application/problem+json' } },
      ),
    );
    vi.stubGlobal('fetch', fakeFetch);
    const err = await api('POST', '/v1/clusters', { name: 'x' }, 'pol_token').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiProblem);
    const problem = err as ApiProblem;
    expect(problem.code).toBe('POLICY_VIOLATION');
    expect(problem.status).toBe(422);
    expect(problem.violations).toHaveLength(1);
    const init = fakeFetch.mock.calls[0]?.[1];
    const headers = init?.headers as Record<string, string>;
    expect(headers['x-polaris-channel']).toBe('dashboard');
    expect(headers.authorization).toBe('Bearer pol_token');
  });

  it('survives a non-JSON error body', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('upstream down', { status: 502 })));
    const err = (await api('GET', '/v1/clusters').catch((e: unknown) => e)) as ApiProblem;
    expect(err.code).toBe('ERROR');
    expect(err.status).toBe(502);
  });
});

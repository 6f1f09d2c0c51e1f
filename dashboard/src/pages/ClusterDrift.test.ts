import { describe, expect, it } from 'vitest';
import type { Schemas } from '../api/client';
import { driftActions, driftValue } from './ClusterDrift';

const open: Schemas['DriftView'] = {
  id: 'd',
  cluster_id: 'c',
  resource: 'KafkaTopic/ns/orders',
  field: 'spec.config.retention.ms',
  expected: 86400000,
  actual: 172800000,
  changed_by: 'kubectl-patch',
  status: 'open',
  unexplained: false,
  reverting: false,
  detected_at: '2026-11-30T10:00:00Z',
  observed_at: '2026-11-30T10:00:00Z',
};

describe('drift', () => {
  it('offers what each drift can still have done to it', () => {
    expect(driftActions(open)).toEqual(['revert', 'adopt', 'ignore']);
    expect(driftActions({ ...open, actual: null })).toEqual(['revert', 'ignore']);
    expect(driftActions({ ...open, expected: null, unexplained: true })).toEqual(['ignore']);
    expect(driftActions({ ...open, reverting: true })).toEqual([]);
    expect(driftActions({ ...open, status: 'ignored' })).toEqual([]);
  });

  it('shows values as JSON and says what an absent one means', () => {
    expect(driftValue(86400000, 'missing')).toBe('86400000');
    expect(driftValue('delete', 'missing')).toBe('delete');
    expect(driftValue(null, 'missing')).toBe('missing');
    expect(driftValue({ replicas: 3 }, '-')).toBe('{"replicas":3}');
  });
});

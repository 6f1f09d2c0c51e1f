import { describe, expect, it } from 'vitest';
import { parseRoute } from './router';
import { statusTone } from './components';

describe('routes and badges', () => {
  it('parses the hash routes', () => {
    expect(parseRoute('')).toEqual({ page: 'clusters' });
    expect(parseRoute('#/clusters/new')).toEqual({ page: 'new-cluster' });
    expect(parseRoute('#/clusters/0b6f')).toEqual({ page: 'cluster', id: '0b6f' });
    expect(parseRoute('#/audit')).toEqual({ page: 'audit' });
    expect(parseRoute('#/operations')).toEqual({ page: 'operations' });
    expect(parseRoute('#/nowhere')).toEqual({ page: 'clusters' });
  });

  it('gives every cluster status a tone', () => {
    expect(statusTone('READY')).toBe('ok');
    expect(statusTone('PROVISIONING')).toBe('busy');
    expect(statusTone('STALLED')).toBe('bad');
    expect(statusTone('SOMETHING_NEW')).toBe('muted');
  });
});

import { describe, expect, it } from 'vitest';
import type { Topic } from '../api/client';
import { toPatchTopic } from './ClusterActions';

const topic = {
  id: 't',
  name: 'orders.events',
  partitions: 6,
  replication_factor: 3,
  config: { 'retention.ms': '86400000', 'cleanup.policy': 'delete' },
  status: 'READY',
  version: 4,
} as unknown as Topic;

describe('topic edit', () => {
  it('sends only what changed, based on the version shown', () => {
    expect(toPatchTopic(topic, { partitions: '6', retention_ms: '86400000' })).toEqual({ expected_version: 4 });
    expect(toPatchTopic(topic, { partitions: '8', retention_ms: '86400000' })).toEqual({ expected_version: 4, partitions: 8 });
  });

  it('replaces retention.ms in the whole config and keeps the other keys', () => {
    expect(toPatchTopic(topic, { partitions: '6', retention_ms: '3600000' })).toEqual({
      expected_version: 4,
      config: { 'retention.ms': '3600000', 'cleanup.policy': 'delete' },
    });
    expect(toPatchTopic(topic, { partitions: '6', retention_ms: '' })).toEqual({
      expected_version: 4,
      config: { 'cleanup.policy': 'delete' },
    });
  });
});

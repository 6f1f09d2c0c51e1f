import { describe, expect, it } from 'vitest';
import { ruleText, toAclRules } from './ClusterUsers';

describe('user ACL rules', () => {
  it('reads a trailing * as a prefix, splits operations and leaves empty rows out', () => {
    expect(
      toAclRules([
        { type: 'topic', name: 'orders.*', operations: 'Write, Describe', effect: 'allow' },
        { type: 'group', name: 'orders-app', operations: 'Read', effect: 'deny' },
        { type: 'cluster', name: '', operations: 'IdempotentWrite', effect: 'allow' },
        { type: 'topic', name: '', operations: ' ', effect: 'allow' },
      ]),
    ).toEqual([
      { resource: { type: 'topic', name: 'orders.', pattern: 'prefix' }, operations: ['Write', 'Describe'], effect: 'allow' },
      { resource: { type: 'group', name: 'orders-app', pattern: 'literal' }, operations: ['Read'], effect: 'deny' },
      { resource: { type: 'cluster', name: null, pattern: 'literal' }, operations: ['IdempotentWrite'], effect: 'allow' },
    ]);
  });

  it('shows a rule on one line as the form takes it', () => {
    const [rule] = toAclRules([{ type: 'topic', name: 'orders.*', operations: 'Write', effect: 'allow' }]);
    expect(rule && ruleText(rule)).toBe('allow topic orders.* Write');
  });
});

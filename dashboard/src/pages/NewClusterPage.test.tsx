import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NewClusterPage, toCreateCluster } from './NewClusterPage';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('the create-cluster form', () => {
  it('sends only the fields that were filled in', () => {
    const body = toCreateCluster({ name: ' orders ', provider: 'gcp', region: 'europe-west1', brokers: '5', kafka_version: '',
      storage_gib: '', deletion_protection: false });
    expect(body).toEqual({ name: 'orders', provider: 'gcp', region: 'europe-west1', brokers: 5 });
  });

  it('shows each policy violation next to the field it names', async () => {
    // A fake API answering every request with the refusal the real one gives.
    const fakeFetch = vi.fn(async () =>
      new Response(
        JSON.stringify({
          code: 'POLICY_VIOLATION',
          status: 422,
          detail: 'the request breaks 2 policy rule(s) of bundle version 3',
          violations: [
            { policy: 'brokers', policy_version: 3, field: 'brokers', constraint: '3..=6', actual: '9', message: 'brokers must be 3..=6' },
            { policy: 'allowed_locations', policy_version: 3, field: 'region', constraint: 'one of [aws/eu-west-1]', actual: 'aws/us-east-1', message: 'clusters may not be placed in aws/us-east-1' },
          ],
        }),
        { status: 422 },
      ),
    );
    vi.stubGlobal('fetch', fakeFetch);
    const { container } = render(<NewClusterPage />);
    fireEvent.change(container.querySelector('input[name=name]')!, { target: { value: 'orders' } });
    fireEvent.change(container.querySelector('input[name=brokers]')!, { target: { value: '9' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create' }));
    await waitFor(() => expect(container.querySelectorAll('.violation')).toHaveLength(2));
    expect(container.querySelector('[data-field=brokers]')?.textContent).toContain('brokers must be 3..=6');
    expect(container.querySelector('[data-field=region]')?.textContent).toContain('aws/us-east-1');
    expect(screen.getByRole('alert').textContent).toContain('POLICY_VIOLATION');
  });
});

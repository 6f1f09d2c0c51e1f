import { useState } from 'react';
import { query, type Cluster } from '../api/client';
import { Badge, ProblemBanner, Table, time } from '../components';
import { usePoll } from '../hooks';

const STATUSES = ['', 'REQUESTED', 'PROVISIONING', 'READY', 'SCALING', 'REBALANCING', 'UPGRADING', 'DELETING',
  'DELETED', 'STALLED', 'FAILED', 'DEGRADED'];
const PROVIDERS = ['', 'aws', 'gcp', 'azure', 'onprem'];

export function ClustersPage() {
  const [status, setStatus] = useState('');
  const [provider, setProvider] = useState('');
  const [region, setRegion] = useState('');
  const path = `/v1/clusters${query({ status, provider, region, page_size: 100 })}`;
  const { data, error } = usePoll<{ items: Cluster[] }>(path, 2000);
  return (
    <section>
      <div className="header-row">
        <h1>Clusters</h1>
        <a className="button" href="#/clusters/new">
          Create cluster
        </a>
      </div>
      <div className="filters">
        <label>
          Status
          <select name="status" value={status} onChange={(e) => setStatus(e.target.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Provider
          <select name="provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
            {PROVIDERS.map((p) => (
              <option key={p} value={p}>
                {p || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Region
          <input name="region" value={region} placeholder="any" onChange={(e) => setRegion(e.target.value.trim())} />
        </label>
      </div>
      <ProblemBanner problem={error} />
      <Table headers={['Name', 'Status', 'Place', 'Brokers', 'Kafka', 'Updated']} testId="clusters">
        {data?.items.map((c) => (
          <tr key={c.id} data-cluster={c.name}>
            <td>
              <a href={`#/clusters/${c.id}`}>{c.name}</a>
            </td>
            <td>
              <Badge status={c.status} />
              {c.open_drifts ? (
                <span className="badge badge-bad drift-badge" data-testid="drift-badge" title={c.status_reason ?? undefined}>
                  {c.open_drifts} drift
                </span>
              ) : null}
            </td>
            <td>
              {c.provider}/{c.region}
            </td>
            <td>{c.brokers}</td>
            <td>{c.kafka_version}</td>
            <td>{time(c.updated_at)}</td>
          </tr>
        ))}
      </Table>
      {data && data.items.length === 0 && <p className="muted">No clusters match.</p>}
    </section>
  );
}

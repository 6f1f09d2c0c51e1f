import { useState } from 'react';
import {
  api,
  violationsByField,
  type Broker,
  type Cluster,
  type CreateTopic,
  type HistoryEntry,
  type Operation,
  type Topic,
} from '../api/client';
import { Badge, Field, ProblemBanner, Table, time } from '../components';
import { useApiCall, usePoll } from '../hooks';
import { MetricsCharts } from '../charts';
import { DeleteCluster, TopicActions, UpgradeForm } from './ClusterActions';
import { ClusterDrift } from './ClusterDrift';
import { ClusterUsers } from './ClusterUsers';

export function ClusterPage({ id }: { id: string }) {
  const base = `/v1/clusters/${encodeURIComponent(id)}`;
  const cluster = usePoll<Cluster>(base, 1000);
  const brokers = usePoll<{ items: Broker[] }>(`${base}/brokers`, 2000);
  const topics = usePoll<{ items: Topic[] }>(`${base}/topics?page_size=100`, 2000);
  const history = usePoll<{ items: HistoryEntry[] }>(`${base}/history`, 2000);
  const [tab, setTab] = useState<'overview' | 'users' | 'drift'>('overview');
  const c = cluster.data;
  if (cluster.error && !c) return <ProblemBanner problem={cluster.error} />;
  if (!c) return <p className="muted">Loading...</p>;
  const reload = () => {
    cluster.reload();
    topics.reload();
    history.reload();
  };
  return (
    <section>
      <div className="header-row">
        <h1>
          {c.name} <Badge status={c.status} />
        </h1>
      </div>
      <dl className="facts card">
        <dt>Place</dt>
        <dd>
          {c.provider}/{c.region}
        </dd>
        <dt>Kafka</dt>
        <dd>
          {c.kafka_version} (metadata {c.metadata_version})
        </dd>
        <dt>Brokers</dt>
        <dd data-testid="brokers-now">{c.brokers}</dd>
        <dt>Controllers</dt>
        <dd>{c.controllers}</dd>
        <dt>Storage</dt>
        <dd>{c.storage_gib} GiB</dd>
        <dt>Bootstrap</dt>
        <dd>{c.bootstrap_servers ?? '-'}</dd>
        <dt>Version</dt>
        <dd>{c.version}</dd>
        <dt>Reason</dt>
        <dd>{c.status_reason ?? '-'}</dd>
      </dl>
      {c.current_operation_id && <OperationPanel id={c.current_operation_id} />}
      {c.status !== 'DELETED' && c.status !== 'DELETING' && (
        <div className="cluster-actions">
          <ScaleForm cluster={c} onDone={reload} />
          <UpgradeForm cluster={c} onDone={reload} />
          <DeleteCluster cluster={c} onDone={reload} />
        </div>
      )}
      <nav className="tabs" role="tablist">
        <button type="button" role="tab" name="tab-overview" aria-selected={tab === 'overview'} onClick={() => setTab('overview')}>
          Brokers and topics
        </button>
        <button type="button" role="tab" name="tab-users" aria-selected={tab === 'users'} onClick={() => setTab('users')}>
          Users
        </button>
        <button type="button" role="tab" name="tab-drift" aria-selected={tab === 'drift'} onClick={() => setTab('drift')}>
          Drift {c.open_drifts ? <span className="badge badge-bad" data-testid="drift-count">{c.open_drifts}</span> : null}
        </button>
      </nav>
      {tab === 'users' && <ClusterUsers clusterId={c.id} />}
      {tab === 'drift' && <ClusterDrift clusterId={c.id} />}
      {tab === 'overview' && <Overview cluster={c} brokers={brokers.data?.items} topics={topics.data?.items} reload={reload} />}
      <Timeline clusterId={c.id} events={history.data?.items ?? []} />
    </section>
  );
}

/** The cluster's brokers (with the charts) and topics. */
function Overview({ cluster: c, brokers, topics, reload }: { cluster: Cluster; brokers?: Broker[]; topics?: Topic[]; reload: () => void }) {
  return (
    <>
      <h2>Brokers</h2>
      <MetricsCharts clusterId={c.id} />
      <Table headers={['Node id', 'Role', 'Status']} testId="brokers">
        {brokers?.map((b) => (
          <tr key={`${b.role}-${b.id}`}>
            <td>{b.id}</td>
            <td>{b.role}</td>
            <td>
              <Badge status={b.status} />
            </td>
          </tr>
        ))}
      </Table>
      <h2>Topics</h2>
      <Table headers={['Name', 'Partitions', 'Replicas', 'Status', 'Config', '']} testId="topics">
        {topics?.map((t) => (
          <tr key={t.id} data-topic={t.name}>
            <td>{t.name}</td>
            <td>{t.partitions}</td>
            <td>{t.replication_factor}</td>
            <td>
              <Badge status={t.status} />
            </td>
            <td>
              {Object.entries(t.config)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}
            </td>
            <td>
              <TopicActions clusterId={c.id} topic={t} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
      <TopicForm clusterId={c.id} onDone={reload} />
    </>
  );
}

/** The running operation's steps, refreshed every second. */
function OperationPanel({ id }: { id: string }) {
  const { data: op } = usePoll<Operation>(`/v1/operations/${encodeURIComponent(id)}`, 1000);
  if (!op) return null;
  return (
    <div className="card" data-testid="operation">
      <h2>
        Operation {op.kind} <Badge status={op.state} />
      </h2>
      <ol className="steps">
        {op.steps.map((s) => (
          <li key={s.name} data-step={s.name} data-state={s.state}>
            <Badge status={s.state} /> {s.name} <span className="muted">{s.detail}</span>
          </li>
        ))}
      </ol>
      {op.error && <p className="problem">{op.error}</p>}
    </div>
  );
}

function ScaleForm({ cluster, onDone }: { cluster: Cluster; onDone: () => void }) {
  const [brokers, setBrokers] = useState(String(cluster.brokers));
  const { problem, run } = useApiCall(onDone);
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    void run(() => api('POST', `/v1/clusters/${cluster.id}/scale`, { brokers: Number(brokers) }));
  };
  const byField = violationsByField(problem?.violations ?? []);
  return (
    <form className="card inline-form" data-testid="scale" onSubmit={submit}>
      <Field label="Scale to brokers" field="brokers" violations={byField.brokers}>
        <input name="brokers" type="number" min={1} value={brokers} onChange={(e) => setBrokers(e.target.value)} />
      </Field>
      <button type="submit">Scale</button>
      <ProblemBanner problem={problem} />
    </form>
  );
}

export function toCreateTopic(f: { name: string; partitions: string; replication_factor: string; retention_ms: string }): CreateTopic {
  const body: CreateTopic = {
    name: f.name.trim(),
    partitions: Number(f.partitions),
    replication_factor: Number(f.replication_factor),
  };
  if (f.retention_ms.trim()) body.config = { 'retention.ms': f.retention_ms.trim() };
  return body;
}

/** Creates a topic; each policy violation appears next to the field it names. */
function TopicForm({ clusterId, onDone }: { clusterId: string; onDone: () => void }) {
  const [form, setForm] = useState({ name: '', partitions: '6', replication_factor: '3', retention_ms: '' });
  const { problem, run } = useApiCall(onDone);
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    void run(async () => {
      await api('POST', `/v1/clusters/${clusterId}/topics`, toCreateTopic(form));
      setForm({ ...form, name: '' });
    });
  };
  const byField = violationsByField(problem?.violations ?? []);
  return (
    <form className="card form" data-testid="create-topic" onSubmit={submit}>
      <h2>Create topic</h2>
      <Field label="Name" field="name" violations={byField.name}>
        <input name="name" value={form.name} onChange={set('name')} placeholder="orders.events" required />
      </Field>
      <Field label="Partitions" field="partitions" violations={byField.partitions}>
        <input name="partitions" type="number" min={1} value={form.partitions} onChange={set('partitions')} />
      </Field>
      <Field label="Replication factor" field="replication_factor" violations={byField.replication_factor}>
        <input name="replication_factor" type="number" min={1} value={form.replication_factor} onChange={set('replication_factor')} />
      </Field>
      <Field label="retention.ms" field="config.retention.ms" violations={byField['config.retention.ms']}>
        <input name="retention_ms" value={form.retention_ms} onChange={set('retention_ms')} placeholder="604800000" />
      </Field>
      <div className="actions">
        <button type="submit">Create topic</button>
      </div>
      <ProblemBanner problem={problem} />
    </form>
  );
}

/** Every event of the cluster, and a slider that shows the cluster's state just after any one of them. */
function Timeline({ clusterId, events }: { clusterId: string; events: HistoryEntry[] }) {
  // null: follow the newest event.
  const [picked, setPicked] = useState<number | null>(null);
  const index = picked === null ? events.length - 1 : Math.min(picked, events.length - 1);
  const at = events[index]?.occurred_at ?? null;
  const asOf = usePoll<Cluster>(
    at && picked !== null ? `/v1/clusters/${encodeURIComponent(clusterId)}?as_of=${encodeURIComponent(at)}` : null,
  );
  const past = picked !== null && asOf.data?.version === events[index]?.sequence ? asOf.data : null;
  return (
    <div className="card" data-testid="timeline">
      <h2>History</h2>
      {events.length > 0 && (
        <div className="as-of">
          <label>
            State as of
            <input
              type="range"
              name="as_of"
              min={0}
              max={events.length - 1}
              value={index}
              onChange={(e) => {
                const v = Number(e.target.value);
                setPicked(v === events.length - 1 ? null : v);
              }}
            />
          </label>
          <span data-testid="as-of-time">{at ? time(at) : ''}</span>
          {picked === null ? (
            <span className="muted"> (now)</span>
          ) : past ? (
            <span data-testid="as-of-state">
              {' '}
              <Badge status={past.status} /> brokers <strong data-testid="as-of-brokers">{past.brokers}</strong>, Kafka{' '}
              {past.kafka_version}, version {past.version}
            </span>
          ) : (
            <span className="muted"> loading...</span>
          )}
        </div>
      )}
      <ol className="timeline">
        {events.map((e, i) => (
          <li key={e.event_id} className={i <= index ? 'event' : 'event future'} data-event={e.event_type}>
            <div>
              <span className="seq">#{e.sequence}</span> <strong>{e.event_type}</strong> v{e.event_version}{' '}
              <span className="muted">
                {time(e.occurred_at)} by {e.actor}
              </span>
            </div>
            <div className="muted small">
              correlation {e.correlation_id}
              {e.operation_id ? `, operation ${e.operation_id}` : ''}
              {e.policy_version != null ? `, policy v${e.policy_version}` : ''}
            </div>
            <details>
              <summary>payload</summary>
              <pre>{JSON.stringify(e.payload, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ol>
    </div>
  );
}

import { useState } from 'react';
import { api, violationsByField, type Cluster, type Schemas, type Topic } from '../api/client';
import { Field, ProblemBanner } from '../components';
import { useApiCall } from '../hooks';

type KafkaVersion = Schemas['UpgradeCluster']['kafka_version'];
/** The versions Polaris supports (the OpenAPI document's enum; the type check refuses any other). */
export const KAFKA_VERSIONS: KafkaVersion[] = ['4.2.0', '4.2.1', '4.3.0', '4.3.1'];

/** Upgrade (or, before the metadata version is raised, roll back) the cluster's Kafka version. */
export function UpgradeForm({ cluster, onDone }: { cluster: Cluster; onDone: () => void }) {
  const [version, setVersion] = useState<KafkaVersion>(cluster.kafka_version as KafkaVersion);
  const { problem, run } = useApiCall(onDone);
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    void run(() => api('POST', `/v1/clusters/${cluster.id}/upgrade`, { kafka_version: version, expected_version: cluster.version }));
  };
  const byField = violationsByField(problem?.violations ?? []);
  return (
    <form className="card inline-form" data-testid="upgrade" onSubmit={submit}>
      <Field label="Kafka version" field="kafka_version" violations={byField.kafka_version}>
        <select name="kafka_version" value={version} onChange={(e) => setVersion(e.target.value as KafkaVersion)}>
          {KAFKA_VERSIONS.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" disabled={version === cluster.kafka_version}>
        Upgrade
      </button>
      <ProblemBanner problem={problem} />
    </form>
  );
}

/** Deletes the cluster once its name is typed again, as managed Kafka consoles ask. */
export function DeleteCluster({ cluster, onDone }: { cluster: Cluster; onDone: () => void }) {
  const [typed, setTyped] = useState('');
  const { problem, run } = useApiCall(onDone);
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    void run(() => api('DELETE', `/v1/clusters/${cluster.id}`));
  };
  return (
    <form className="card inline-form" data-testid="delete-cluster" onSubmit={submit}>
      <Field label={`Type ${cluster.name} to delete the cluster`} field="confirm" violations={[]}>
        <input name="confirm" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
      </Field>
      <button type="submit" className="danger" disabled={typed !== cluster.name}>
        Delete cluster
      </button>
      <ProblemBanner problem={problem} />
    </form>
  );
}

/** The PATCH body for a topic edit: only what changed, based on the version shown. */
export function toPatchTopic(topic: Topic, form: { partitions: string; retention_ms: string }) {
  const body: Schemas['PatchTopic'] = { expected_version: topic.version };
  const partitions = Number(form.partitions);
  if (form.partitions.trim() && partitions !== topic.partitions) body.partitions = partitions;
  const retention = form.retention_ms.trim();
  if (retention !== (topic.config['retention.ms'] ?? '')) {
    const config = { ...topic.config };
    if (retention) config['retention.ms'] = retention;
    else delete config['retention.ms'];
    body.config = config;
  }
  return body;
}

/** A topic row's actions: edit partitions and retention, or delete (asked twice). */
export function TopicActions({ clusterId, topic, onDone }: { clusterId: string; topic: Topic; onDone: () => void }) {
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [form, setForm] = useState({ partitions: String(topic.partitions), retention_ms: topic.config['retention.ms'] ?? '' });
  const { problem, run } = useApiCall(onDone);
  const path = `/v1/clusters/${clusterId}/topics/${encodeURIComponent(topic.name)}`;
  const call = (method: string, body?: unknown) =>
    run(async () => {
      await api(method, path, body);
      setEditing(false);
      setConfirming(false);
    });
  const byField = violationsByField(problem?.violations ?? []);
  if (topic.status === 'DELETED' || topic.status === 'DELETING') return null;
  return (
    <div className="topic-actions" data-topic-actions={topic.name}>
      {editing ? (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void call('PATCH', toPatchTopic(topic, form));
          }}
        >
          <Field label="Partitions" field="partitions" violations={byField.partitions}>
            <input name="partitions" type="number" min={topic.partitions} value={form.partitions} onChange={(e) => setForm({ ...form, partitions: e.target.value })} />
          </Field>
          <Field label="retention.ms" field="config.retention.ms" violations={byField['config.retention.ms']}>
            <input name="retention_ms" value={form.retention_ms} onChange={(e) => setForm({ ...form, retention_ms: e.target.value })} />
          </Field>
          <button type="submit">Save</button>
          <button type="button" className="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : confirming ? (
        <>
          <button type="button" className="danger" name="confirm-delete" onClick={() => void call('DELETE')}>
            Delete {topic.name}
          </button>
          <button type="button" className="secondary" onClick={() => setConfirming(false)}>
            Keep
          </button>
        </>
      ) : (
        <>
          <button type="button" className="secondary" name="edit" onClick={() => setEditing(true)}>
            Edit
          </button>
          <button type="button" className="secondary" name="delete" onClick={() => setConfirming(true)}>
            Delete
          </button>
        </>
      )}
      <ProblemBanner problem={problem} />
    </div>
  );
}

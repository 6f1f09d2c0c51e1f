import { useState } from 'react';
import { asProblem, api, violationsByField, type ApiProblem, type Cluster, type CreateCluster, type Operation } from '../api/client';
import { Field, ProblemBanner } from '../components';
import { go } from '../router';

type Form = { name: string; provider: string; region: string; brokers: string; kafka_version: string;
  storage_gib: string; deletion_protection: boolean };

export function toCreateCluster(f: Form): CreateCluster {
  const body: CreateCluster = {
    name: f.name.trim(),
    provider: f.provider as CreateCluster['provider'],
    region: f.region.trim(),
    brokers: Number(f.brokers),
  };
  // The API judges the version (and names it in a violation); the form does not limit the choice.
  if (f.kafka_version.trim()) body.kafka_version = f.kafka_version.trim() as CreateCluster['kafka_version'];
  if (f.storage_gib.trim()) body.storage_gib = Number(f.storage_gib);
  if (f.deletion_protection) body.deletion_protection = true;
  return body;
}

/** Requests a cluster. Policy violations are shown next to the fields they name; a dry run checks first. */
export function NewClusterPage() {
  const [form, setForm] = useState<Form>({ name: '', provider: 'aws', region: 'eu-west-1', brokers: '3',
    kafka_version: '', storage_gib: '', deletion_protection: false });
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const [note, setNote] = useState('');
  const set = (k: keyof Form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target instanceof HTMLInputElement && e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const byField = violationsByField(problem?.violations ?? []);
  const submit = async (dryRun: boolean) => {
    setNote('');
    try {
      if (dryRun) {
        const plan = await api<{ policy_version?: number | null }>('POST', '/v1/clusters?dry_run=true', toCreateCluster(form));
        setProblem(null);
        setNote(`Allowed by policy version ${plan.policy_version ?? 0}. Nothing was recorded.`);
        return;
      }
      const accepted = await api<{ cluster: Cluster; operation: Operation }>('POST', '/v1/clusters', toCreateCluster(form));
      go(`#/clusters/${accepted.cluster.id}`);
    } catch (e) {
      setProblem(asProblem(e));
    }
  };
  return (
    <section>
      <h1>Create cluster</h1>
      <form
        className="card form"
        data-testid="create-cluster"
        onSubmit={(e) => {
          e.preventDefault();
          void submit(false);
        }}
      >
        <Field label="Name" field="name" violations={byField.name}>
          <input name="name" value={form.name} onChange={set('name')} placeholder="orders" required />
        </Field>
        <Field label="Provider" field="provider" violations={byField.provider}>
          <select name="provider" value={form.provider} onChange={set('provider')}>
            {['aws', 'gcp', 'azure', 'onprem'].map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </Field>
        <Field label="Region" field="region" violations={byField.region}>
          <input name="region" value={form.region} onChange={set('region')} required />
        </Field>
        <Field label="Brokers" field="brokers" violations={byField.brokers}>
          <input name="brokers" type="number" min={1} value={form.brokers} onChange={set('brokers')} required />
        </Field>
        <Field label="Kafka version (default: newest)" field="kafka_version" violations={byField.kafka_version}>
          <input name="kafka_version" value={form.kafka_version} onChange={set('kafka_version')} placeholder="4.3.1" />
        </Field>
        <Field label="Storage GiB" field="storage_gib" violations={byField.storage_gib}>
          <input name="storage_gib" type="number" min={1} value={form.storage_gib} onChange={set('storage_gib')} />
        </Field>
        <Field label="Deletion protection" field="deletion_protection" violations={byField.deletion_protection}>
          <input name="deletion_protection" type="checkbox" checked={form.deletion_protection} onChange={set('deletion_protection')} />
        </Field>
        <div className="actions">
          <button type="button" className="secondary" onClick={() => void submit(true)}>
            Check (dry run)
          </button>
          <button type="submit">Create</button>
        </div>
        {note && <p className="note">{note}</p>}
        <ProblemBanner problem={problem} />
      </form>
    </section>
  );
}

import { useState } from 'react';
import { api, violationsByField, type AclRule, type Credentials, type KafkaUser, type Schemas } from '../api/client';
import { Badge, Field, ProblemBanner, Table } from '../components';
import { useApiCall, usePoll } from '../hooks';

type ResourceType = Schemas['AclResourceType'];
type Operation = Schemas['AclOperation'];
const RESOURCE_TYPES: ResourceType[] = ['topic', 'group', 'cluster', 'transactional_id'];

/** One ACL rule as the form edits it: operations as a comma-separated list, a trailing `*` on the name makes a
 * prefix rule. */
export type RuleForm = { type: ResourceType; name: string; operations: string; effect: 'allow' | 'deny' };

/** The create request's ACL rules from the form's rows (empty rows are left out). */
export function toAclRules(rows: RuleForm[]): AclRule[] {
  return rows
    .filter((r) => r.operations.trim() || r.name.trim())
    .map((r) => {
      const name = r.name.trim();
      const prefix = name.endsWith('*');
      const bare = prefix ? name.slice(0, -1) : name;
      return {
        resource: { type: r.type, name: bare || null, pattern: prefix ? 'prefix' : 'literal' },
        operations: r.operations
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean) as Operation[],
        effect: r.effect,
      };
    });
}

/** An ACL rule as one line: `allow topic orders.* Write, Read`. */
export function ruleText(r: AclRule): string {
  const star = r.resource.pattern === 'prefix' ? '*' : '';
  return `${r.effect ?? 'allow'} ${r.resource.type} ${r.resource.name ?? ''}${star} ${r.operations.join(', ')}`;
}

/** The users tab of a cluster: its Kafka users with their ACLs, a create form, rotate and delete. A password
 * is shown once, in a dialog, right after the create or rotate that made it. */
export function ClusterUsers({ clusterId }: { clusterId: string }) {
  const base = `/v1/clusters/${encodeURIComponent(clusterId)}/users`;
  const users = usePoll<{ items: KafkaUser[] }>(`${base}?page_size=100`, 2000);
  const [shown, setShown] = useState<Credentials | null>(null);
  return (
    <div data-testid="users">
      <Table headers={['Name', 'Status', 'ACLs', 'Quotas', 'Credentials', '']} testId="users-table">
        {users.data?.items.map((u) => (
          <tr key={u.id} data-user={u.name}>
            <td>{u.name}</td>
            <td>
              <Badge status={u.status} />
            </td>
            <td>
              <ul className="acl-list">
                {u.acls.map((r, i) => (
                  <li key={i} data-acl={ruleText(r)}>
                    {ruleText(r)}
                  </li>
                ))}
              </ul>
            </td>
            <td>
              {Object.entries(u.quotas)
                .filter(([, v]) => v != null)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}
            </td>
            <td className="muted">
              generation {u.credentials_generation}, Secret {u.secret_name}
            </td>
            <td>
              <UserActions base={base} user={u} onShown={setShown} onDone={users.reload} />
            </td>
          </tr>
        ))}
      </Table>
      <UserForm base={base} onShown={setShown} onDone={users.reload} />
      {shown && <CredentialsDialog credentials={shown} onClose={() => setShown(null)} />}
    </div>
  );
}

function UserActions(props: { base: string; user: KafkaUser; onShown: (c: Credentials) => void; onDone: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const { problem, run } = useApiCall(props.onDone);
  const path = `${props.base}/${encodeURIComponent(props.user.name)}`;
  if (props.user.status === 'DELETED' || props.user.status === 'DELETING') return null;
  const rotate = () =>
    run(async () => {
      const answer = await api<Schemas['CredentialsRotated']>('POST', `${path}/rotate`);
      if (answer.credentials) props.onShown(answer.credentials);
    });
  return (
    <div className="topic-actions" data-user-actions={props.user.name}>
      <button type="button" className="secondary" name="rotate" onClick={() => void rotate()}>
        Rotate password
      </button>
      {confirming ? (
        <>
          <button type="button" className="danger" name="confirm-delete" onClick={() => void run(() => api('DELETE', path))}>
            Delete {props.user.name}
          </button>
          <button type="button" className="secondary" onClick={() => setConfirming(false)}>
            Keep
          </button>
        </>
      ) : (
        <button type="button" className="secondary" name="delete" onClick={() => setConfirming(true)}>
          Delete
        </button>
      )}
      <ProblemBanner problem={problem} />
    </div>
  );
}

const EMPTY_RULE: RuleForm = { type: 'topic', name: '', operations: '', effect: 'allow' };

/** Creates a user; each policy violation, and a rule Kafka would not take, appears next to its field. */
function UserForm(props: { base: string; onShown: (c: Credentials) => void; onDone: () => void }) {
  const [name, setName] = useState('');
  const [rules, setRules] = useState<RuleForm[]>([{ ...EMPTY_RULE }]);
  const [rates, setRates] = useState({ producer_byte_rate: '', consumer_byte_rate: '' });
  const { problem, run } = useApiCall(props.onDone);
  const setRule = (i: number, patch: Partial<RuleForm>) => setRules(rules.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const quotas: Schemas['UserQuotas'] = {};
    if (rates.producer_byte_rate.trim()) quotas.producer_byte_rate = Number(rates.producer_byte_rate);
    if (rates.consumer_byte_rate.trim()) quotas.consumer_byte_rate = Number(rates.consumer_byte_rate);
    void run(async () => {
      const answer = await api<Schemas['UserAccepted']>('POST', props.base, { name: name.trim(), acls: toAclRules(rules), quotas });
      if (answer.credentials) props.onShown(answer.credentials);
      setName('');
      setRules([{ ...EMPTY_RULE }]);
    });
  };
  const byField = violationsByField(problem?.violations ?? []);
  // A bad request names one field: shown there, like a violation.
  const invalid = (field: string) =>
    problem?.field === field || problem?.field?.startsWith(`${field}.`) || problem?.field?.startsWith(`${field}[`)
      ? [{ policy: 'request', policy_version: 0, field, constraint: problem.code, actual: '', message: problem.message }]
      : [];
  const at = (field: string) => [...(byField[field] ?? []), ...invalid(field)];
  return (
    <form className="card form" data-testid="create-user" onSubmit={submit}>
      <h2>Create user</h2>
      <Field label="Name" field="name" violations={at('name')}>
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} placeholder="orders-app" required />
      </Field>
      {rules.map((r, i) => (
        <fieldset key={i} className="acl-rule" data-rule={i}>
          <legend>ACL rule {i + 1}</legend>
          <Field label="Resource" field={`acls[${i}].resource.type`} violations={[]}>
            <select name={`acl-${i}-type`} value={r.type} onChange={(e) => setRule(i, { type: e.target.value as ResourceType })}>
              {RESOURCE_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Name (end with * for a prefix)" field={`acls[${i}].resource.name`} violations={at(`acls[${i}].resource.name`)}>
            <input name={`acl-${i}-name`} value={r.name} onChange={(e) => setRule(i, { name: e.target.value })} placeholder="orders.*" />
          </Field>
          <Field label="Operations" field={`acls[${i}].operations`} violations={at(`acls[${i}].operations`)}>
            <input name={`acl-${i}-operations`} value={r.operations} onChange={(e) => setRule(i, { operations: e.target.value })} placeholder="Write, Describe" />
          </Field>
          <Field label="Effect" field={`acls[${i}].effect`} violations={[]}>
            <select name={`acl-${i}-effect`} value={r.effect} onChange={(e) => setRule(i, { effect: e.target.value as 'allow' | 'deny' })}>
              <option value="allow">allow</option>
              <option value="deny">deny</option>
            </select>
          </Field>
        </fieldset>
      ))}
      <button type="button" className="secondary" name="add-rule" onClick={() => setRules([...rules, { ...EMPTY_RULE }])}>
        Add rule
      </button>
      <Field label="producer_byte_rate" field="quotas.producer_byte_rate" violations={at('quotas.producer_byte_rate')}>
        <input name="producer_byte_rate" type="number" min={1} value={rates.producer_byte_rate} onChange={(e) => setRates({ ...rates, producer_byte_rate: e.target.value })} />
      </Field>
      <Field label="consumer_byte_rate" field="quotas.consumer_byte_rate" violations={at('quotas.consumer_byte_rate')}>
        <input name="consumer_byte_rate" type="number" min={1} value={rates.consumer_byte_rate} onChange={(e) => setRates({ ...rates, consumer_byte_rate: e.target.value })} />
      </Field>
      <div className="actions">
        <button type="submit">Create user</button>
      </div>
      <ProblemBanner problem={problem} />
    </form>
  );
}

/** The password, this once: Polaris keeps it only in the cluster's Secret and cannot show it again. */
function CredentialsDialog({ credentials, onClose }: { credentials: Credentials; onClose: () => void }) {
  const props = [
    'security.protocol=' + credentials.security_protocol,
    'sasl.mechanism=' + credentials.mechanism,
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${credentials.username}" password="${credentials.password}";`,
  ].join('\n');
  return (
    <div className="dialog-backdrop">
      <div className="card dialog" role="dialog" aria-modal="true" data-testid="credentials-dialog">
        <h2>Credentials for {credentials.username}</h2>
        <p className="problem">This password is shown once. Polaris keeps it only in the cluster's Secret; copy it now.</p>
        <dl className="facts">
          <dt>Username</dt>
          <dd data-testid="credentials-username">{credentials.username}</dd>
          <dt>Password</dt>
          <dd>
            <code data-testid="credentials-password">{credentials.password}</code>
          </dd>
          <dt>Bootstrap</dt>
          <dd>{credentials.bootstrap_servers ?? '-'}</dd>
          <dt>Generation</dt>
          <dd>{credentials.generation}</dd>
        </dl>
        <pre className="small">{props}</pre>
        <div className="actions">
          <button type="button" onClick={() => void navigator.clipboard?.writeText(credentials.password)}>
            Copy password
          </button>
          <button type="button" className="secondary" name="close-credentials" onClick={onClose}>
            I have saved it
          </button>
        </div>
      </div>
    </div>
  );
}

import { useState } from 'react';
import { query, type AuditEntry } from '../api/client';
import { Badge, ProblemBanner, Table, time } from '../components';
import { usePoll } from '../hooks';

const OUTCOMES = ['', 'accepted', 'rejected', 'deduplicated', 'dry_run', 'error'];

/** The audit log, filtered by actor, resource, outcome and time; the newest page of the matching entries. */
export function AuditPage() {
  const [actor, setActor] = useState('');
  const [resource, setResource] = useState('');
  const [outcome, setOutcome] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);
  const path = `/v1/audit${query({ actor, resource, outcome, from: iso(from), to: iso(to), page_size: 100 })}`;
  const { data, error } = usePoll<{ items: AuditEntry[] }>(path, 3000);
  return (
    <section>
      <h1>Audit log</h1>
      <div className="filters">
        <label>
          Actor
          <input name="actor" value={actor} onChange={(e) => setActor(e.target.value.trim())} placeholder="token:name:id" />
        </label>
        <label>
          Resource contains
          <input name="resource" value={resource} onChange={(e) => setResource(e.target.value.trim())} placeholder="/v1/clusters" />
        </label>
        <label>
          Outcome
          <select name="outcome" value={outcome} onChange={(e) => setOutcome(e.target.value)}>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input name="from" type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          To
          <input name="to" type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
      </div>
      <ProblemBanner problem={error} />
      <Table headers={['At', 'Actor', 'Channel', 'Request', 'Outcome', 'Status', 'Code', 'Policy']} testId="audit">
        {data?.items.map((a) => (
          <tr key={a.id} data-outcome={a.outcome}>
            <td>{time(a.at)}</td>
            <td className="small">{a.actor}</td>
            <td>{a.channel}</td>
            <td>
              {a.method} {a.resource}
            </td>
            <td>
              <Badge status={a.outcome} />
            </td>
            <td>{a.status}</td>
            <td>
              {a.code ?? ''}
              {a.violations.length > 0 && (
                <ul className="violations">
                  {a.violations.map((v) => (
                    <li key={`${v.policy}-${v.field}`}>{v.message}</li>
                  ))}
                </ul>
              )}
            </td>
            <td>{a.policy_version ?? ''}</td>
          </tr>
        ))}
      </Table>
    </section>
  );
}

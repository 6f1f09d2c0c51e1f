import { useState } from 'react';
import { query, type AuditEntry } from '../api/client';
import { Badge, ProblemBanner, Table, time } from '../components';
import { usePoll } from '../hooks';

const OUTCOMES = ['', 'accepted', 'rejected', 'deduplicated', 'dry_run', 'error'];

/** The audit log, oldest first, filtered by actor, resource, outcome and time, a page of 100 at a time. */
export function AuditPage() {
  const [actor, setActor] = useState('');
  const [resource, setResource] = useState('');
  const [outcome, setOutcome] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  // The pages walked so far (their tokens); the last one is shown. A filter change starts again.
  const [pages, setPages] = useState<string[]>([]);
  const page = pages[pages.length - 1];
  const filter = (set: (v: string) => void) => (v: string) => {
    set(v);
    setPages([]);
  };
  const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);
  const path = `/v1/audit${query({ actor, resource, outcome, from: iso(from), to: iso(to), page_size: 100, page_token: page })}`;
  const { data, error } = usePoll<{ items: AuditEntry[]; next_page_token?: string | null }>(path, 3000);
  return (
    <section>
      <h1>Audit log</h1>
      <div className="filters">
        <label>
          Actor
          <input name="actor" value={actor} onChange={(e) => filter(setActor)(e.target.value.trim())} placeholder="token:name:id" />
        </label>
        <label>
          Resource contains
          <input name="resource" value={resource} onChange={(e) => filter(setResource)(e.target.value.trim())} placeholder="/v1/clusters" />
        </label>
        <label>
          Outcome
          <select name="outcome" value={outcome} onChange={(e) => filter(setOutcome)(e.target.value)}>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o || 'any'}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input name="from" type="datetime-local" value={from} onChange={(e) => filter(setFrom)(e.target.value)} />
        </label>
        <label>
          To
          <input name="to" type="datetime-local" value={to} onChange={(e) => filter(setTo)(e.target.value)} />
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
      <div className="actions pager">
        <button className="secondary" disabled={pages.length === 0} onClick={() => setPages(pages.slice(0, -1))}>
          Previous page
        </button>
        <button
          className="secondary"
          disabled={!data?.next_page_token}
          onClick={() => data?.next_page_token && setPages([...pages, data.next_page_token])}
        >
          Next page
        </button>
      </div>
    </section>
  );
}

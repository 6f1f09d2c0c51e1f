import { useState } from 'react';
import { api, type Schemas } from '../api/client';
import { ProblemBanner, Table, time } from '../components';
import { useApiCall, usePoll } from '../hooks';

type Drift = Schemas['DriftView'];

/** A drift's value as one line: JSON, or what its absence means. */
export function driftValue(v: unknown, absent: string): string {
  if (v === null || v === undefined) return absent;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const DRIFT_TONE: Record<string, string> = { open: 'bad', reverting: 'busy', reverted: 'ok', adopted: 'ok', ignored: 'muted' };

function DriftBadge({ drift }: { drift: Drift }) {
  const status = drift.reverting ? 'reverting' : drift.status;
  return (
    <span className={`badge badge-${DRIFT_TONE[status] ?? 'muted'}`} data-status={status}>
      {status}
    </span>
  );
}

/** What a drift can still have done to it: an unexplained object is never reverted or adopted, a missing one is
 * never adopted, and nothing is done to a drift that is resolved or being reverted. */
export function driftActions(d: Drift): Array<'revert' | 'adopt' | 'ignore'> {
  if (d.status !== 'open' || d.reverting) return [];
  if (d.unexplained) return ['ignore'];
  if (d.actual === null || d.actual === undefined) return ['revert', 'ignore'];
  return ['revert', 'adopt', 'ignore'];
}

/** The drift tab of a cluster: where its objects on the target differ from its history, open ones first, with
 * revert, adopt (judged by the org's policy) and ignore (with a reason). */
export function ClusterDrift({ clusterId }: { clusterId: string }) {
  const base = `/v1/clusters/${encodeURIComponent(clusterId)}/drift`;
  const drift = usePoll<{ items: Drift[]; open: number }>(base, 2000);
  return (
    <div data-testid="drift">
      <p className="muted">
        {drift.data?.open ?? 0} open. Polaris compares the fields it applies to each object with what the cluster's events say.
      </p>
      <Table headers={['Status', 'Resource', 'Field', 'Expected', 'Actual', 'Changed by', 'Detected', '']} testId="drift-table">
        {drift.data?.items.map((d) => (
          <tr key={d.id} data-drift={d.id} data-field={d.field}>
            <td>
              <DriftBadge drift={d} />
            </td>
            <td>{d.resource}</td>
            <td>{d.field || '(whole object)'}</td>
            <td>{driftValue(d.expected, 'no event explains it')}</td>
            <td>{driftValue(d.actual, 'missing')}</td>
            <td>{d.changed_by ?? '-'}</td>
            <td>{time(d.detected_at)}</td>
            <td>
              {d.status === 'open' ? (
                <DriftActions base={base} drift={d} onDone={drift.reload} />
              ) : (
                <span className="muted">
                  {d.resolved_by} {d.reason ? `: ${d.reason}` : ''}
                </span>
              )}
            </td>
          </tr>
        ))}
      </Table>
      {drift.data && drift.data.items.length === 0 && <p className="muted">No drift: the target holds what the events say.</p>}
    </div>
  );
}

function DriftActions(props: { base: string; drift: Drift; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const { problem, run } = useApiCall(props.onDone);
  const resolve = (action: 'revert' | 'adopt' | 'ignore') =>
    run(() => api('POST', `${props.base}/${props.drift.id}/resolve`, { action, reason: reason.trim() || null }));
  const actions = driftActions(props.drift);
  return (
    <div className="topic-actions" data-drift-actions={props.drift.id}>
      {actions.map((a) => (
        <button key={a} type="button" className={a === 'revert' ? '' : 'secondary'} name={a} onClick={() => void resolve(a)}>
          {a === 'revert' ? 'Revert' : a === 'adopt' ? 'Adopt live value' : 'Ignore'}
        </button>
      ))}
      {actions.includes('ignore') && (
        <input name="reason" placeholder="reason (to ignore)" value={reason} onChange={(e) => setReason(e.target.value)} />
      )}
      <ProblemBanner problem={problem} />
    </div>
  );
}

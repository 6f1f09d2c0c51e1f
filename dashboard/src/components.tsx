import type { ReactNode } from 'react';
import type { ApiProblem, Violation } from './api/client';
import type { components } from './api/schema';

type Schemas = components['schemas'];
/** Every status, state and outcome the API can show, from the generated types: a new value in the OpenAPI
 * document fails the type check until it has a tone here. */
export type Shown =
  | Schemas['ClusterView']['status']
  | Schemas['TopicView']['status']
  | Schemas['OperationView']['state']
  | Schemas['OperationStep']['state']
  | Schemas['AuditEntry']['outcome'];
type Tone = 'ok' | 'busy' | 'muted' | 'bad';

const STATUS_TONE: Record<Shown, Tone> = {
  READY: 'ok',
  succeeded: 'ok',
  accepted: 'ok',
  REQUESTED: 'busy',
  PROVISIONING: 'busy',
  SCALING: 'busy',
  REBALANCING: 'busy',
  UPGRADING: 'busy',
  UPDATING: 'busy',
  DELETING: 'busy',
  pending: 'busy',
  running: 'busy',
  dry_run: 'busy',
  deduplicated: 'muted',
  DELETED: 'muted',
  cancelled: 'muted',
  STALLED: 'bad',
  FAILED: 'bad',
  DEGRADED: 'bad',
  failed: 'bad',
  stalled: 'bad',
  rejected: 'bad',
  error: 'bad',
};

export function statusTone(status: string): Tone {
  return (STATUS_TONE as Record<string, Tone>)[status] ?? 'muted';
}

export function Badge({ status }: { status: string }) {
  return <span className={`badge badge-${statusTone(status)}`} data-status={status}>{status}</span>;
}

/** A refused request: its code and detail; violations are shown next to their fields by the forms. */
export function ProblemBanner({ problem }: { problem: ApiProblem | null }) {
  if (!problem) return null;
  return (
    <div className="problem" role="alert">
      <strong>{problem.code}</strong>: {problem.message}
    </div>
  );
}

export function FieldViolations({ field, violations }: { field: string; violations?: Violation[] }) {
  if (!violations?.length) return null;
  return (
    <ul className="violations" data-field={field}>
      {violations.map((v) => (
        <li key={`${v.policy}-${v.constraint}`} className="violation" data-policy={v.policy}>
          {v.message} <span className="muted">({v.policy}, policy v{v.policy_version}; {v.constraint})</span>
        </li>
      ))}
    </ul>
  );
}

export function Field(props: { label: string; field: string; violations?: Violation[]; children: ReactNode }) {
  return (
    <label className={props.violations?.length ? 'field field-invalid' : 'field'}>
      <span>{props.label}</span>
      {props.children}
      <FieldViolations field={props.field} violations={props.violations} />
    </label>
  );
}

export function Table(props: { headers: string[]; children: ReactNode; testId?: string }) {
  return (
    <table data-testid={props.testId}>
      <thead>
        <tr>
          {props.headers.map((h) => (
            <th key={h}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>{props.children}</tbody>
    </table>
  );
}

export function time(s?: string | null): string {
  return s ? new Date(s).toLocaleString() : '';
}

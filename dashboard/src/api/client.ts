// The dashboard's only way to change anything: the REST API, with the user's token, marked as the dashboard
// channel in the audit log. Errors are the API's problem documents.
import type { components } from './schema';

export type Schemas = components['schemas'];
export type Cluster = Schemas['ClusterView'];
export type Topic = Schemas['TopicView'];
export type Operation = Schemas['OperationView'];
export type Broker = Schemas['BrokerView'];
export type HistoryEntry = Schemas['HistoryEntry'];
export type ClusterMetrics = Schemas['ClusterMetrics'];
export type Chart = Schemas['Chart'];
export type AuditEntry = Schemas['AuditEntry'];
export type Violation = Schemas['ViolationView'];
export type Problem = Schemas['Problem'];
export type CreateCluster = Schemas['CreateCluster'];
export type CreateTopic = Schemas['CreateTopicRequest'];
export type KafkaUser = Schemas['UserView'];
export type AclRule = Schemas['AclRule'];
export type Credentials = Schemas['Credentials'];

const TOKEN_KEY = 'polaris.token';

export function storedToken(): string | null {
  return window.localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) window.localStorage.setItem(TOKEN_KEY, token);
  else window.localStorage.removeItem(TOKEN_KEY);
}

/** A refused request: the problem's stable code, its detail and (for POLICY_VIOLATION) every violation. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly violations: Violation[];
  /** The request field a VALIDATION_FAILED names, when it names one. */
  readonly field: string | null;

  constructor(status: number, problem: Partial<Problem>) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem.code ?? 'ERROR';
    this.violations = problem.violations ?? [];
    this.field = problem.field ?? null;
  }
}

/** Any failure of a call as a problem (a network error has no status or code of its own). */
export function asProblem(e: unknown): ApiProblem {
  return e instanceof ApiProblem ? e : new ApiProblem(0, { detail: String(e) });
}

/** Violations grouped by the request field they name (`config.retention.ms` stays whole). */
export function violationsByField(violations: Violation[]): Record<string, Violation[]> {
  const out: Record<string, Violation[]> = {};
  for (const v of violations) (out[v.field] ??= []).push(v);
  return out;
}

export async function api<T>(method: string, path: string, body?: unknown, token = storedToken()): Promise<T> {
  const headers: Record<string, string> = { 'x-polaris-channel': 'dashboard', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) throw new ApiProblem(resp.status, (json ?? {}) as Partial<Problem>);
  return json as T;
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

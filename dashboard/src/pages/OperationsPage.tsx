import { type Operation } from '../api/client';
import { Badge, ProblemBanner, Table, time } from '../components';
import { usePoll } from '../hooks';

export function OperationsPage() {
  const { data, error } = usePoll<{ items: Operation[] }>('/v1/operations?page_size=100', 2000);
  return (
    <section>
      <h1>Operations</h1>
      <ProblemBanner problem={error} />
      <Table headers={['Kind', 'State', 'Cluster', 'Steps', 'Requested by', 'Started', 'Finished']} testId="operations">
        {data?.items.map((o) => (
          <tr key={o.id}>
            <td>{o.kind}</td>
            <td>
              <Badge status={o.state} />
            </td>
            <td>
              <a href={`#/clusters/${o.cluster_id}`}>{o.cluster_id.slice(0, 8)}</a>
            </td>
            <td>
              {o.steps.filter((s) => s.state === 'succeeded').length}/{o.steps.length}
              {o.error ? ` (${o.error})` : ''}
            </td>
            <td>{o.requested_by}</td>
            <td>{time(o.started_at)}</td>
            <td>{time(o.finished_at)}</td>
          </tr>
        ))}
      </Table>
    </section>
  );
}

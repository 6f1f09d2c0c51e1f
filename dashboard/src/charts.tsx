import type { Chart, ClusterMetrics } from './api/client';
import { usePoll } from './hooks';

const WIDTH = 320;
const HEIGHT = 90;
const COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];

/** Each series of `chart` as an SVG polyline's points, on a shared scale: time across the window, values from 0
 * to the largest value (a flat zero line sits at the bottom). */
export function polylines(chart: Chart, start: number, end: number, width = WIDTH, height = HEIGHT): string[] {
  const max = Math.max(0, ...chart.series.flatMap((s) => s.points.map(([, v]) => v)));
  const span = Math.max(end - start, 1);
  const y = (v: number) => (max > 0 ? height - (v / max) * height : height);
  return chart.series.map((s) =>
    s.points.map(([t, v]) => `${(((t - start) / span) * width).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
  );
}

/** A value in the chart's Grafana unit: bytes per second, milliseconds, or a plain number. */
export function formatValue(unit: string, v: number): string {
  if (unit === 'Bps') {
    const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
  }
  if (unit === 'ms') return `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** The cluster's broker charts (the managed-cluster Grafana dashboard's panels), refreshed every 15 s. */
export function MetricsCharts({ clusterId }: { clusterId: string }) {
  const metrics = usePoll<ClusterMetrics>(`/v1/clusters/${encodeURIComponent(clusterId)}/metrics?minutes=30`, 15000);
  if (metrics.error && !metrics.data) {
    return (
      <p className="muted" data-testid="charts-unavailable">
        Charts unavailable: {metrics.error.message}
      </p>
    );
  }
  const m = metrics.data;
  if (!m) return <p className="muted">Loading charts...</p>;
  const start = Date.parse(m.start) / 1000;
  const end = Date.parse(m.end) / 1000;
  return (
    <div className="charts" data-testid="charts">
      {m.charts.map((chart) => {
        const lines = polylines(chart, start, end);
        return (
          <figure key={chart.title} className="chart card" data-chart={chart.title}>
            <figcaption>{chart.title}</figcaption>
            {chart.series.length === 0 ? (
              <p className="muted">No data yet</p>
            ) : (
              <>
                <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} role="img" aria-label={chart.title}>
                  {lines.map((points, i) => (
                    <polyline key={chart.series[i]?.label ?? i} points={points} fill="none" stroke={COLORS[i % COLORS.length]} strokeWidth={1.5} />
                  ))}
                </svg>
                <ul className="legend">
                  {chart.series.map((s, i) => {
                    const last = s.points[s.points.length - 1];
                    return (
                      <li key={s.label} data-series={s.label}>
                        <span className="swatch" style={{ background: COLORS[i % COLORS.length] }} /> {s.label}:{' '}
                        {last ? formatValue(chart.unit, last[1]) : '-'}
                      </li>
                    );
                  })}
                </ul>
              </>
            )}
          </figure>
        );
      })}
    </div>
  );
}

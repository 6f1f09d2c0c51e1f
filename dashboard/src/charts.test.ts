import { describe, expect, it } from 'vitest';
import { formatValue, polylines } from './charts';

describe('broker charts', () => {
  it('scales every series of a chart to one shared range', () => {
    const chart = {
      title: 'Bytes in per broker',
      unit: 'Bps',
      series: [
        { label: 'broker 3', points: [[100, 0], [200, 50]] as [number, number][] },
        { label: 'broker 4', points: [[100, 100], [200, 25]] as [number, number][] },
      ],
    };
    expect(polylines(chart, 100, 200, 100, 10)).toEqual(['0.0,10.0 100.0,5.0', '0.0,0.0 100.0,7.5']);
  });

  it('draws an all-zero series along the bottom', () => {
    const chart = { title: 'Under-replicated partitions', unit: 'short', series: [{ label: 'broker 3', points: [[0, 0], [10, 0]] as [number, number][] }] };
    expect(polylines(chart, 0, 10, 10, 10)).toEqual(['0.0,10.0 10.0,10.0']);
  });

  it('formats values in the panel unit', () => {
    expect(formatValue('Bps', 512)).toBe('512 B/s');
    expect(formatValue('Bps', 3 * 1024 * 1024)).toBe('3.0 MiB/s');
    expect(formatValue('ms', 4.25)).toBe('4.3 ms');
    expect(formatValue('short', 1)).toBe('1');
  });
});

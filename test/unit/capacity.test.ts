import { estimateLoad, MEASURED_RATE } from '../../plan/capacity';
import { formatBytes, formatDuration } from '../../plan/units';

describe("check's estimate of the full load", () => {
  it('grows with the bytes at the measured rate, plus a cost per table', () => {
    const gb = estimateLoad({ tables: 2, estimatedBytes: String(1e9) })!;
    const tb = estimateLoad({ tables: 2, estimatedBytes: String(1e12) })!;
    expect(gb.seconds).toBeCloseTo(1e9 / MEASURED_RATE.bytesPerSecond + (2 * MEASURED_RATE.msPerTable) / 1000, 1);
    expect(tb.seconds).toBeCloseTo(1e12 / MEASURED_RATE.bytesPerSecond + (2 * MEASURED_RATE.msPerTable) / 1000, 1);
    expect(tb.seconds / gb.seconds).toBeGreaterThan(950);
    // 50,000 small tables: the per-table cost dominates (bench/many-tables.sh measured it).
    const many = estimateLoad({ tables: 50_000, estimatedBytes: String(50_000 * 8192) })!;
    expect(many.seconds).toBeGreaterThan((50_000 * MEASURED_RATE.msPerTable) / 1000);
    expect(tb.text).toMatch(/^about \d+(\.\d)? (h \d+ min|days) for 931\.3 GB in 2 tables, at the rate measured on one worker/);
    expect(tb.text).toContain('Capacity planning');
    expect(estimateLoad(undefined)).toBeUndefined();
  });

  it('writes sizes and durations people read at a glance', () => {
    expect([formatBytes(512), formatBytes(2048), formatBytes(5 * 1024 ** 3), formatBytes(3 * 1024 ** 4)]).toEqual(['512 B', '2.0 kB', '5.0 GB', '3.0 TB']);
    expect([formatDuration(250), formatDuration(12_345), formatDuration(185_000), formatDuration(3 * 3600_000 + 60_000), formatDuration(5 * 86_400_000)]).toEqual([
      '250 ms', '12.3 s', '3 min 5 s', '3 h 1 min', '5.0 days',
    ]);
  });
});

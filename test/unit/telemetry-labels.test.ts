import { OTHER_TABLES, TABLE_LABELS, tableLabel } from '../../activities/telemetry';

describe('metric table labels stay bounded', () => {
  it('names the first TABLE_LABELS tables, sums the rest under one label, and keeps a named table named', () => {
    const names = Array.from({ length: TABLE_LABELS + 500 }, (_, i) => `public.t${i}`);
    const labels = names.map(tableLabel);
    expect(new Set(labels).size).toBe(TABLE_LABELS + 1);
    expect(labels.slice(0, TABLE_LABELS)).toEqual(names.slice(0, TABLE_LABELS));
    expect(labels.slice(TABLE_LABELS).every((l) => l === OTHER_TABLES)).toBe(true);
    expect(tableLabel('public.t7')).toBe('public.t7');
    expect(tableLabel('public."New Table"')).toBe(OTHER_TABLES);
  });
});

import { chunkCount, chunkFilter, groupTasks, keyChunks, pageChunks, unitLabel, wholeUnit, type LoadUnit } from '../../plan/load-chunks';
import type { TableModel } from '../../plan/schema-model';

const table = (name: string, extra: Partial<TableModel> = {}): TableModel => ({
  schema: 'public', name, columns: [], uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [],
  estimatedRows: '0', estimatedBytes: '0', ...extra,
});

describe('chunkCount', () => {
  it('keeps tables whole without chunkRows, below 1.5 chunks, and for partitioned parents', () => {
    const t = table('t');
    const big = { pages: 10 ** 6, reltuples: 10 ** 8, bytes: 8 * 10 ** 9 };
    expect(chunkCount(t, big)).toBe(1);
    expect(chunkCount(t, { ...big, reltuples: 140 }, 100)).toBe(1);
    expect(chunkCount(table('p', { partitioned: true }), big, 1000)).toBe(1);
    expect(chunkCount(t, big, 10 ** 6)).toBe(100);
  });
});

describe('pageChunks', () => {
  it('splits into contiguous page ranges, the last open-ended', () => {
    const units = pageChunks(table('big'), { pages: 100, reltuples: 10_000, bytes: 800_000 }, 4);
    expect(units.map((u) => [u.chunk, u.of, u.range])).toEqual([
      [1, 4, { kind: 'pages', from: 0, to: 25 }],
      [2, 4, { kind: 'pages', from: 25, to: 50 }],
      [3, 4, { kind: 'pages', from: 50, to: 75 }],
      [4, 4, { kind: 'pages', from: 75 }],
    ]);
    expect(units.every((u) => u.table === 'public.big' && u.estBytes === 200_000)).toBe(true);
  });
});

describe('keyChunks', () => {
  const t = table('t', {
    columns: [
      { name: 'Tenant ID', type: 'integer', notNull: true, binaryCopySafe: true },
      { name: 'code', type: 'text', notNull: true, binaryCopySafe: true },
    ],
    primaryKey: { name: 't_pkey', definition: 'PRIMARY KEY ("Tenant ID", code)', columns: ['Tenant ID', 'code'] },
  });
  const extent = { pages: 10, reltuples: 1000, bytes: 1000 };

  it('draws boundaries at the quantiles of the sample, first and last ranges open', () => {
    const sample = Array.from({ length: 100 }, (_, i) => [String(i), `c${i}`]);
    const units = keyChunks(t, extent, sample, 4);
    expect(units.map((u) => u.range)).toEqual([
      { kind: 'keys', to: ['25', 'c25'] },
      { kind: 'keys', from: ['25', 'c25'], to: ['50', 'c50'] },
      { kind: 'keys', from: ['50', 'c50'], to: ['75', 'c75'] },
      { kind: 'keys', from: ['75', 'c75'] },
    ]);
  });

  it('merges equal boundaries (a skewed key) and falls back to whole for an empty sample', () => {
    const sample = [...Array.from({ length: 90 }, () => ['1', 'a']), ...Array.from({ length: 10 }, (_, i) => ['2', `b${i}`])];
    expect(keyChunks(t, extent, sample, 4)).toHaveLength(2);
    expect(keyChunks(t, extent, [], 4)).toEqual([wholeUnit(t, extent)]);
  });

  it('renders typed, quoted row comparisons (hostile names and values)', () => {
    expect(chunkFilter(t, { kind: 'keys', from: ['1', "it's"], to: ['2', 'a\\b'] })).toBe(
      ` WHERE ("Tenant ID", "code") >= ('1'::integer, 'it''s'::text) AND ("Tenant ID", "code") < ('2'::integer, E'a\\\\b'::text)`,
    );
    const single = table('s', {
      columns: [{ name: 'id', type: 'bigint', notNull: true, binaryCopySafe: true }],
      primaryKey: { name: 's_pkey', definition: 'PRIMARY KEY (id)', columns: ['id'] },
    });
    expect(chunkFilter(single, { kind: 'keys', from: ['10'] })).toBe(` WHERE "id" >= '10'::bigint`);
    expect(chunkFilter(single, { kind: 'keys', to: ['10'] })).toBe(` WHERE "id" < '10'::bigint`);
  });
});

describe('chunkFilter for pages and whole tables', () => {
  it('renders TID range filters', () => {
    const t = table('t');
    expect(chunkFilter(t, { kind: 'whole' })).toBe('');
    expect(chunkFilter(t, { kind: 'pages', from: 0, to: 8 })).toBe(" WHERE ctid >= '(0,0)'::tid AND ctid < '(8,0)'::tid");
    expect(chunkFilter(t, { kind: 'pages', from: 8 })).toBe(" WHERE ctid >= '(8,0)'::tid");
  });
});

describe('groupTasks', () => {
  const unit = (name: string, estBytes: number, chunk = 0): LoadUnit => ({ table: `public.${name}`, chunk, of: chunk ? 2 : 1, range: { kind: 'whole' }, estBytes });

  it('gives chunks and large tables a task each, packs small tables, largest first', () => {
    const units = [unit('s1', 10), unit('big', 1000), unit('c', 500, 1), unit('c', 500, 2), unit('s2', 20), unit('s3', 30)];
    const tasks = groupTasks(units, { maxBytes: 100, maxUnits: 2 });
    expect(tasks.map((t) => t.units.map(unitLabel))).toEqual([['public.big'], ['public.c #1/2'], ['public.c #2/2'], ['public.s3', 'public.s2'], ['public.s1']]);
    expect(tasks.map((t) => t.id)).toEqual([0, 1, 2, 3, 4]);
    expect(tasks[3]!.estBytes).toBe(50);
  });

  it('covers every unit exactly once for 10,000 tables in a few hundred tasks', () => {
    const units = Array.from({ length: 10_000 }, (_, i) => unit(`t${i}`, 8192));
    const tasks = groupTasks(units, { maxBytes: 64 * 1024 * 1024, maxUnits: 100 });
    expect(tasks).toHaveLength(100);
    expect(new Set(tasks.flatMap((t) => t.units.map((u) => u.table))).size).toBe(10_000);
  });
});

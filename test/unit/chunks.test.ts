import { chunkFilter, planChunks } from '../../activities/postgres/chunks';
import type { TableModel } from '../../plan/schema-model';

const table = (name: string, extra: Partial<TableModel> = {}): TableModel => ({
  schema: 'public', name, columns: [], uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [],
  estimatedRows: '0', estimatedBytes: '0', ...extra,
});

describe('planChunks', () => {
  it('keeps small tables whole and splits large ones into contiguous page ranges, the last open-ended', () => {
    const small = table('small');
    const big = table('big');
    const chunks = planChunks([big, small], new Map([[big, { pages: 100, reltuples: 10_000 }], [small, { pages: 3, reltuples: 300 }]]), 2_500);
    const bigChunks = chunks.filter((c) => c.table === big);
    expect(bigChunks.map((c) => [c.index, c.fromPage, c.toPage])).toEqual([[1, 0, 25], [2, 25, 50], [3, 50, 75], [4, 75, undefined]]);
    expect(bigChunks.every((c) => c.of === 4)).toBe(true);
    expect(chunks.filter((c) => c.table === small)).toEqual([{ table: small, index: 0, of: 1 }]);
  });

  it('keeps every table whole without chunkRows, and never splits a partitioned parent', () => {
    const big = table('big');
    const parent = table('parent', { partitioned: true });
    const extents = new Map([[big, { pages: 10 ** 6, reltuples: 10 ** 8 }], [parent, { pages: 10 ** 7, reltuples: 0 }]]);
    expect(planChunks([big, parent], extents)).toEqual([{ table: big, index: 0, of: 1 }, { table: parent, index: 0, of: 1 }]);
    expect(planChunks([big, parent], extents, 10 ** 6).filter((c) => c.table === parent)).toEqual([{ table: parent, index: 0, of: 1 }]);
    expect(planChunks([big, parent], extents, 10 ** 6).filter((c) => c.table === big)).toHaveLength(100);
  });

  it('renders TID range filters', () => {
    const t = table('t');
    expect(chunkFilter({ table: t, index: 0, of: 1 })).toBe('');
    expect(chunkFilter({ table: t, index: 1, of: 2, fromPage: 0, toPage: 8 })).toBe(" WHERE ctid >= '(0,0)'::tid AND ctid < '(8,0)'::tid");
    expect(chunkFilter({ table: t, index: 2, of: 2, fromPage: 8 })).toBe(" WHERE ctid >= '(8,0)'::tid");
  });
});

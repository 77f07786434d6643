import { mysqlChunkFilter } from '../../activities/mysql/reader';
import type { TableModel } from '../../plan/schema-model';

const table = (key: string[]): TableModel =>
  ({
    schema: 'shop',
    name: 'order`items',
    columns: key.map((name) => ({ name, type: 'bigint', notNull: true, conversion: 'integer' })),
    primaryKey: { name: 'pk', columns: key },
  }) as unknown as TableModel;

describe('MySQL key ranges', () => {
  it('reads a whole table without a filter and a range with integer literals, bounds open at the ends', () => {
    expect(mysqlChunkFilter(table(['id']), { kind: 'whole' })).toBe('');
    expect(mysqlChunkFilter(table(['id']), { kind: 'keys', to: ['100'] })).toBe(' WHERE `id` < 100');
    expect(mysqlChunkFilter(table(['id']), { kind: 'keys', from: ['100'], to: ['18446744073709551615'] })).toBe(' WHERE `id` >= 100 AND `id` < 18446744073709551615');
    expect(mysqlChunkFilter(table(['order`id', 'line']), { kind: 'keys', from: ['-5', '2'] })).toBe(' WHERE (`order``id`, `line`) >= (-5, 2)');
  });

  it('refuses bounds that are not integers and ranges MySQL has not (pages)', () => {
    expect(() => mysqlChunkFilter(table(['id']), { kind: 'keys', from: ['1 OR 1=1'] })).toThrow(/not 1 integer/);
    expect(() => mysqlChunkFilter(table(['a', 'b']), { kind: 'keys', from: ['1'] })).toThrow(/not 2 integer/);
    expect(() => mysqlChunkFilter(table(['id']), { kind: 'pages', from: 0 })).toThrow(/whole or by key ranges/);
  });
});

import { withoutTable, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { tableModel } from '../support/models';

const table = (name: string, extra: Partial<TableModel> = {}): TableModel => tableModel('public', name, [['id', 'integer']], [], extra);

describe('withoutTable: a table taken out of the migration', () => {
  const model: SchemaModel = {
    schemas: ['public'],
    extensions: [],
    types: [],
    sequences: [
      { schema: 'public', name: 'small_id_seq', dataType: 'integer', start: '1', increment: '1', min: '1', max: '2147483647', cache: '1', cycle: false, lastValue: null, isCalled: false, identity: false, ownedBy: { table: { schema: 'public', name: 'small' }, column: 'id' } },
      { schema: 'public', name: 'shared_seq', dataType: 'bigint', start: '1', increment: '1', min: '1', max: '9', cache: '1', cycle: false, lastValue: null, isCalled: false, identity: false },
    ],
    tables: [
      table('small'),
      table('orders', {
        foreignKeys: [
          { name: 'orders_small_fk', definition: 'FOREIGN KEY (id) REFERENCES public.small(id)', references: { schema: 'public', name: 'small' } },
          { name: 'orders_self_fk', definition: 'FOREIGN KEY (id) REFERENCES public.orders(id)', references: { schema: 'public', name: 'orders' } },
        ],
      }),
    ],
  };

  it('drops the table, the foreign keys that reference it and the sequences it owns; keeps the rest', () => {
    const m = withoutTable(model, 'public.small');
    expect(m.tables.map((t) => t.name)).toEqual(['orders']);
    expect(m.tables[0]!.foreignKeys.map((f) => f.name)).toEqual(['orders_self_fk']);
    expect(m.sequences.map((s) => s.name)).toEqual(['shared_seq']);
    // The recorded model is not changed in place.
    expect(model.tables).toHaveLength(2);
  });

  it('leaves a model without that table as it was', () => {
    expect(withoutTable(model, 'public.nope')).toEqual(model);
  });
});

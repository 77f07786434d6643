import { redesignKeys } from '../../plan/key-redesign';
import type { SchemaModel, TableModel } from '../../plan/schema-model';
import { schemaModel, tableModel } from '../support/models';

const table = (name: string, columns: [string, string][], key: string[], extra: Partial<TableModel> = {}) => tableModel('shop', name, columns, key, extra);
import type { KeySpec } from '../../plan/plan-schema';

const model: SchemaModel = schemaModel([
    table('orders', [['customer_id', 'integer'], ['order_no', 'text']], ['customer_id', 'order_no']),
    table('items', [['line', 'integer'], ['customer_id', 'integer'], ['order_no', 'text'], ['code', 'bigint']], ['line'], {
      foreignKeys: [{ name: 'items_fk', definition: 'FOREIGN KEY (customer_id, order_no) REFERENCES shop.orders(customer_id, order_no) ON DELETE CASCADE', references: { schema: 'shop', name: 'orders' } }],
    }),
    table('notes', [['body', 'text']], []),
]);

const surrogate: KeySpec = { table: 'shop.orders', surrogateKey: { column: 'id', type: 'bigint' } };
const reference = (on: Record<string, string>, extra: Partial<NonNullable<KeySpec['references']>[number]> = {}): KeySpec => ({
  table: 'shop.items',
  references: [{ column: 'order_id', parent: 'shop.orders', on, ...extra }],
});
const issues = (keys: KeySpec[]) => {
  const r = redesignKeys(model, keys);
  return r.ok ? [] : r.issues;
};

describe('redesignKeys', () => {
  test('a surrogate key: a new first column, the primary key, the source key kept as unique', () => {
    const r = redesignKeys(model, [surrogate, reference({ customer_id: 'customer_id', order_no: 'order_no' })]);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const orders = r.model.tables[0]!;
    expect(orders.columns[0]).toEqual({ name: 'id', type: 'bigint', notNull: true, identity: 'by-default', binaryCopySafe: true, added: { kind: 'surrogate-key' } });
    expect(orders.surrogateKey).toEqual({ column: 'id', type: 'bigint', primaryKeyName: 'orders_pkey', naturalKeyName: 'orders_customer_id_order_no_key' });
    // The source key is still how rows are found in the source and in CDC.
    expect(orders.primaryKey?.columns).toEqual(['customer_id', 'order_no']);
    const items = r.model.tables[1]!;
    expect(items.columns.at(-1)).toEqual({ name: 'order_id', type: 'bigint', notNull: false, binaryCopySafe: true, added: { kind: 'reference', parent: { schema: 'shop', name: 'orders' } } });
    // The source's own relationship cascades: so does the new one.
    expect(items.references).toEqual([
      {
        column: 'order_id',
        parent: { schema: 'shop', name: 'orders' },
        parentColumn: 'id',
        on: [['customer_id', 'customer_id'], ['order_no', 'order_no']],
        name: 'items_order_id_fkey',
        onDelete: 'cascade',
        naturalIndex: 'items_customer_id_order_no_idx',
        columnIndex: 'items_order_id_idx',
      },
    ]);
    // The source model is left as it was.
    expect(model.tables[0]!.columns).toHaveLength(2);
  });

  test('a uuid surrogate key on a table without a primary key', () => {
    const r = redesignKeys(model, [{ table: 'shop.notes', surrogateKey: { column: 'id', type: 'uuid' } }]);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.model.tables[2]!.columns[0]).toMatchObject({ name: 'id', type: 'uuid', default: 'gen_random_uuid()' });
    expect(r.model.tables[2]!.surrogateKey).toEqual({ column: 'id', type: 'uuid', primaryKeyName: 'notes_pkey' });
  });

  test('each mistake names its plan field', () => {
    expect(issues([{ table: 'shop.nope', surrogateKey: { column: 'id', type: 'bigint' } }])).toEqual([{ path: 'keys[0].table', message: expect.stringContaining('not one of the migrated tables') }]);
    expect(issues([surrogate, surrogate])).toEqual([{ path: 'keys[1].table', message: expect.stringContaining('already redesigned by keys[0]') }]);
    expect(issues([{ table: 'shop.orders', surrogateKey: { column: 'order_no', type: 'bigint' } }])).toEqual([{ path: 'keys[0].surrogateKey.column', message: expect.stringContaining('already has a column order_no') }]);
    expect(issues([reference({ customer_id: 'customer_id', order_no: 'order_no' })])).toEqual([{ path: 'keys[0].references[0].parent', message: expect.stringContaining('has no surrogate key') }]);
    expect(issues([surrogate, reference({ customer_id: 'customer_id', nope: 'order_no' })])).toEqual([{ path: 'keys[1].references[0].on.nope', message: 'shop.items has no column nope' }]);
    expect(issues([surrogate, reference({ customer_id: 'customer_id', code: 'order_no' })])).toEqual([
      { path: 'keys[1].references[0].on.code', message: expect.stringContaining('shop.items.code is bigint but shop.orders.order_no is text') },
    ]);
    expect(issues([surrogate, reference({ customer_id: 'customer_id' })])).toEqual([{ path: 'keys[1].references[0].on', message: expect.stringContaining("expected the parent's key columns (customer_id, order_no)") }]);
    expect(issues([surrogate, reference({ customer_id: 'customer_id', order_no: 'order_no' }, { column: 'line' })])).toEqual([
      { path: 'keys[1].references[0].column', message: expect.stringContaining('already has a column line') },
    ]);
  });
});

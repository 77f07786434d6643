import { parsePlan } from '../../plan';
import { applyTransformations, dmsTypeOf, postgresType, type MappedSchemaModel, type TransformationResult } from '../../plan/dms-transformations';
import type { ColumnModel, SchemaModel, TableModel } from '../../plan/schema-model';
import type { DmsTableMapping } from '../../plan/table-selection';

type Rules = DmsTableMapping['rules'];

const col = (name: string, type = 'integer', extra: Partial<ColumnModel> = {}): ColumnModel => ({ name, type, notNull: false, binaryCopySafe: true, ...extra });

function table(schema: string, name: string, extra: Partial<TableModel> = {}): TableModel {
  return { schema, name, columns: [], uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [], estimatedRows: '0', estimatedBytes: '0', ...extra };
}

/** shop.orders and shop.order_items, as PostgreSQL introspection renders them. */
function shop(): SchemaModel {
  return {
    schemas: ['shop'],
    extensions: [],
    types: [],
    sequences: [
      { schema: 'shop', name: 'orders_id_seq', dataType: 'bigint', start: '1', increment: '1', min: '1', max: '9223372036854775807', cache: '1', cycle: false, lastValue: '41', isCalled: true, identity: true, ownedBy: { table: { schema: 'shop', name: 'orders' }, column: 'id' } },
    ],
    tables: [
      table('shop', 'orders', {
        columns: [
          col('id', 'bigint', { notNull: true, identity: 'by-default', identitySequence: { schema: 'shop', name: 'orders_id_seq' } }),
          col('customer', 'character varying(40)', { collation: '"C"' }),
          col('total', 'numeric(12,2)'),
          col('note', 'text'),
        ],
        primaryKey: { name: 'orders_pkey', definition: 'PRIMARY KEY (id)', columns: ['id'] },
        uniques: [{ name: 'orders_customer_key', definition: 'UNIQUE (customer, id)' }],
        indexes: [{ name: 'orders_total_idx', definition: 'CREATE INDEX orders_total_idx ON shop.orders USING btree (total DESC)' }],
      }),
      table('shop', 'order_items', {
        columns: [col('order_id', 'bigint', { notNull: true }), col('line', 'integer', { notNull: true }), col('qty', 'integer')],
        primaryKey: { name: 'order_items_pkey', definition: 'PRIMARY KEY (order_id, line)', columns: ['order_id', 'line'] },
        checks: [{ name: 'order_items_qty_check', definition: 'CHECK ((qty > 0))' }],
        foreignKeys: [{ name: 'order_items_order_id_fkey', definition: 'FOREIGN KEY (order_id) REFERENCES shop.orders(id) ON DELETE CASCADE', references: { schema: 'shop', name: 'orders' } }],
      }),
    ],
  };
}

const transformation = (id: string | number, action: string, target: string, locator: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ 'rule-type': 'transformation', 'rule-id': id, 'rule-name': String(id), 'rule-action': action, 'rule-target': target, 'object-locator': locator, ...extra }) as unknown as Rules[number];

const selectAll = { 'rule-type': 'selection', 'rule-id': '1', 'rule-action': 'include', 'object-locator': { 'schema-name': '%', 'table-name': '%' } } as Rules[number];

function ok(r: TransformationResult): MappedSchemaModel {
  if (!r.ok) throw new Error(`expected the rules to apply: ${JSON.stringify(r.errors, null, 2)}`);
  return r.model;
}

function errors(r: TransformationResult) {
  if (r.ok) throw new Error('expected errors');
  return r.errors;
}

const apply = (model: SchemaModel, ...rules: Rules) => applyTransformations(model, [selectAll, ...rules], 'postgres');
const find = (m: MappedSchemaModel, name: string) => m.tables.find((t) => t.name === name)!;

describe('naming rules', () => {
  test('rename a schema: tables move, references and index definitions follow, the identity sequence moves too', () => {
    const before = shop();
    const frozen = JSON.stringify(before);
    const r = apply(before, transformation(2, 'rename', 'schema', { 'schema-name': 'shop' }, { value: 'app' }));
    const m = ok(r);
    expect(JSON.stringify(before)).toBe(frozen);
    expect(m.schemas).toEqual(['app']);
    const orders = find(m, 'orders');
    expect(orders).toMatchObject({ schema: 'app', source: { schema: 'shop', name: 'orders' } });
    expect(orders.indexes[0]!.definition).toBe('CREATE INDEX orders_total_idx ON "app"."orders" USING btree (total DESC)');
    expect(orders.columns[0]!.identitySequence).toEqual({ schema: 'app', name: 'orders_id_seq' });
    expect(m.sequences[0]).toMatchObject({ schema: 'app', name: 'orders_id_seq', ownedBy: { table: { schema: 'app', name: 'orders' }, column: 'id' } });
    const items = find(m, 'order_items');
    expect(items.foreignKeys[0]).toEqual({
      name: 'order_items_order_id_fkey',
      definition: 'FOREIGN KEY (order_id) REFERENCES "app"."orders"(id) ON DELETE CASCADE',
      references: { schema: 'app', name: 'orders' },
    });
    expect(r.changes).toContainEqual({ ruleId: '2', kind: 'rename-schema', severity: 'change', table: { schema: 'app', name: 'orders' }, message: 'schema shop → app' });
  });

  test('rename a table and a column: keys, foreign keys and indexes are rewritten with the new names', () => {
    const m = ok(
      apply(
        shop(),
        transformation(2, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'purchase_orders' }),
        transformation(3, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'id' }, { value: 'order_no' }),
        transformation(4, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'total' }, { value: 'Total Amount' }),
      ),
    );
    const orders = find(m, 'purchase_orders');
    expect(orders.source).toEqual({ schema: 'shop', name: 'orders' });
    expect(orders.columns.map((c) => [c.name, c.sourceName])).toEqual([
      ['order_no', 'id'],
      ['customer', undefined],
      ['Total Amount', 'total'],
      ['note', undefined],
    ]);
    expect(orders.primaryKey).toEqual({ name: 'orders_pkey', definition: 'PRIMARY KEY ("order_no")', columns: ['order_no'] });
    expect(orders.uniques[0]!.definition).toBe('UNIQUE (customer, "order_no")');
    expect(orders.indexes[0]!.definition).toBe('CREATE INDEX orders_total_idx ON "shop"."purchase_orders" USING btree ("Total Amount" DESC)');
    expect(find(m, 'order_items').foreignKeys[0]!.definition).toBe('FOREIGN KEY (order_id) REFERENCES "shop"."purchase_orders"("order_no") ON DELETE CASCADE');
    expect(m.sequences[0]!.ownedBy).toEqual({ table: { schema: 'shop', name: 'purchase_orders' }, column: 'order_no' });
    // The identity sequence stays in its schema: only a schema rename moves it.
    expect(m.sequences[0]!.schema).toBe('shop');
  });

  test('case conversions, prefixes and suffixes', () => {
    const model: SchemaModel = {
      schemas: ['HR'],
      extensions: [],
      types: [],
      sequences: [],
      tables: [
        table('HR', 'TBL_EMPLOYEES_OLD', { columns: [col('EMP_ID'), col('Pre_Name', 'text'), col('Name_tmp', 'text')] }),
      ],
    };
    const m = ok(
      apply(
        model,
        transformation(2, 'convert-lowercase', 'schema', { 'schema-name': '%' }),
        transformation(3, 'remove-prefix', 'table', { 'schema-name': 'HR', 'table-name': 'TBL_%' }, { value: 'TBL_' }),
        transformation(4, 'convert-lowercase', 'column', { 'schema-name': 'HR', 'table-name': '%', 'column-name': 'EMP%' }),
        transformation(5, 'replace-prefix', 'column', { 'schema-name': 'HR', 'table-name': '%', 'column-name': 'Pre_%' }, { value: 'new_', 'old-value': 'Pre_' }),
        transformation(6, 'replace-suffix', 'column', { 'schema-name': 'HR', 'table-name': '%', 'column-name': '%_tmp' }, { value: '_final', 'old-value': '_tmp' }),
      ),
    );
    expect(m.tables[0]).toMatchObject({ schema: 'hr', name: 'EMPLOYEES_OLD', source: { schema: 'HR', name: 'TBL_EMPLOYEES_OLD' } });
    expect(m.tables[0]!.columns.map((c) => c.name)).toEqual(['emp_id', 'new_Name', 'Name_final']);
    expect(m.schemas).toEqual(['hr']);

    const t = (rule: Rules[number]) => ok(apply(model, rule)).tables[0]!.name;
    const loc = { 'schema-name': 'HR', 'table-name': '%' };
    expect(t(transformation(2, 'add-prefix', 'table', loc, { value: 'dms_' }))).toBe('dms_TBL_EMPLOYEES_OLD');
    expect(t(transformation(2, 'add-suffix', 'table', loc, { value: '_v2' }))).toBe('TBL_EMPLOYEES_OLD_v2');
    expect(t(transformation(2, 'remove-suffix', 'table', loc, { value: '_OLD' }))).toBe('TBL_EMPLOYEES');
    expect(t(transformation(2, 'convert-uppercase', 'table', { 'schema-name': 'HR', 'table-name': 'tbl%' }))).toBe('TBL_EMPLOYEES_OLD');
    expect(t(transformation(2, 'convert-lowercase', 'table', loc))).toBe('tbl_employees_old');
    // A prefix that is not there leaves the name alone.
    expect(t(transformation(2, 'remove-prefix', 'table', loc, { value: 'XYZ_' }))).toBe('TBL_EMPLOYEES_OLD');
  });

  test('locators match source names, case-sensitively, with % as the only wildcard', () => {
    const model: SchemaModel = { schemas: ['s'], extensions: [], types: [], sequences: [], tables: [table('s', 'Orders'), table('s', 'orders_2'), table('s', 'a_b')] };
    const r = apply(
      model,
      transformation(2, 'rename', 'table', { 'schema-name': 's', 'table-name': 'Orders' }, { value: 'orders_1' }),
      // Matches the source name orders_2, not the target name orders_1 the rule above gives.
      transformation(3, 'add-suffix', 'table', { 'schema-name': 's', 'table-name': 'orders%' }, { value: '_x' }),
      transformation(4, 'add-suffix', 'table', { 'schema-name': 's', 'table-name': 'a_' }, { value: '_y' }),
    );
    expect(ok(r).tables.map((t) => t.name)).toEqual(['orders_1', 'orders_2_x', 'a_b']);
    expect(r.changes).toContainEqual(expect.objectContaining({ ruleId: '4', kind: 'matched-nothing', severity: 'warning' }));
  });

  test('one rule per object: the lower rule-id wins, whatever the order in the document, and the other is a warning', () => {
    const rules = [
      transformation(7, 'convert-uppercase', 'table', { 'schema-name': 'shop', 'table-name': '%' }),
      transformation(3, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'purchases' }),
    ];
    const r = apply(shop(), ...rules);
    expect(ok(r).tables.map((t) => t.name)).toEqual(['purchases', 'ORDER_ITEMS']);
    expect(r.changes).toContainEqual({
      ruleId: '7',
      kind: 'not-applied',
      severity: 'warning',
      message: expect.stringContaining('rule 7 (convert-uppercase) does not apply to table shop.orders: rule 3 (rename) does'),
    });
    expect(ok(apply(shop(), rules[1]!, rules[0]!)).tables.map((t) => t.name)).toEqual(['purchases', 'ORDER_ITEMS']);
  });

  test('a rule that matches nothing is a warning note, not an error', () => {
    const r = apply(shop(), transformation(2, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'missing' }, { value: 'x' }));
    expect(ok(r).tables.map((t) => t.name)).toEqual(['orders', 'order_items']);
    expect(r.changes).toEqual([
      { ruleId: '2', kind: 'matched-nothing', severity: 'warning', message: 'rule 2 (rename) matches nothing: no migrated table matches shop.missing (DMS ignores such a rule)' },
    ]);
  });

  test('a rename that a check constraint would need is refused, naming the rule and the check', () => {
    const e = errors(apply(shop(), transformation(5, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'order_items', 'column-name': 'qty' }, { value: 'quantity' })));
    expect(e).toEqual([
      {
        ruleId: '5',
        path: 'tables.mappings.rules[1]',
        message: 'rule 5: cannot rename column qty of shop.order_items: check constraint order_items_qty_check mentions it in SQL text that dbferry does not rewrite',
      },
    ]);
  });

  test('expression and partial indexes mentioning a renamed column are refused; plain ones are rewritten', () => {
    const model: SchemaModel = {
      schemas: ['s'],
      extensions: [],
      types: [],
      sequences: [],
      tables: [
        table('s', 't', {
          columns: [col('a', 'text'), col('b', 'text')],
          indexes: [
            { name: 't_lower_idx', definition: 'CREATE INDEX t_lower_idx ON s.t USING btree (lower(a))' },
            { name: 't_b_idx', definition: "CREATE INDEX t_b_idx ON s.t USING btree (b) INCLUDE (a) WHERE (b <> 'a'::text)" },
          ],
        }),
      ],
    };
    const renameA = transformation(2, 'rename', 'column', { 'schema-name': 's', 'table-name': 't', 'column-name': 'a' }, { value: 'A' });
    expect(errors(apply(model, renameA)).map((e) => e.message)).toEqual([
      'rule 2: cannot rename column a of s.t: index t_lower_idx mentions it in SQL text that dbferry does not rewrite',
    ]);
    const renameB = transformation(2, 'rename', 'column', { 'schema-name': 's', 'table-name': 't', 'column-name': 'b' }, { value: 'B' });
    expect(errors(apply(model, renameB)).map((e) => e.message)).toEqual([
      'rule 2: cannot rename column b of s.t: index t_b_idx mentions it in SQL text that dbferry does not rewrite',
    ]);
    const plain = { ...model, tables: [{ ...model.tables[0]!, indexes: [{ name: 'i', definition: 'CREATE UNIQUE INDEX i ON ONLY s.t USING btree (a text_pattern_ops, b NULLS FIRST) INCLUDE (a)' }] }] };
    expect(ok(apply(plain, renameB)).tables[0]!.indexes[0]!.definition).toBe('CREATE UNIQUE INDEX i ON ONLY s.t USING btree (a text_pattern_ops, "B" NULLS FIRST) INCLUDE (a)');
    expect(errors(apply(plain, renameA))[0]!.message).toContain('index i mentions it');
  });

  test('a table named in schema objects (views, triggers) cannot be renamed', () => {
    const model = { ...shop(), objects: { pre: [], post: [{ kind: 'TRIGGER', name: 'trigger audit on shop.orders', sql: 'CREATE TRIGGER audit AFTER UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.audit()' }], refresh: [] } };
    const e = errors(apply(model, transformation(2, 'add-prefix', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'x_' })));
    expect(e.map((x) => x.message)).toEqual(['rule 2: cannot move table shop.orders to shop.x_orders: trigger audit on shop.orders names it in SQL text that dbferry does not rewrite']);
    // The schema the trigger's function lives in stays while SQL objects name it.
    const renamedColumn = ok(apply(model, transformation(2, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'order_items', 'column-name': 'line' }, { value: 'line_no' })));
    expect(renamedColumn.schemas).toEqual(['shop']);
  });

  test('names PostgreSQL cannot hold are refused', () => {
    const long = errors(apply(shop(), transformation(2, 'add-prefix', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'x'.repeat(60) })));
    expect(long[0]!.message).toMatch(/^rule 2: cannot rename table shop.orders to "x+orders": 66 bytes long: PostgreSQL names are at most 63 bytes/);
    const empty = errors(apply(shop(), transformation(3, 'remove-prefix', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'orders' })));
    expect(empty[0]!.message).toBe('rule 3: cannot rename table shop.orders to "": the name would be empty');
  });

  test('two tables or two columns under one target name are refused', () => {
    const tables = errors(apply(shop(), transformation(2, 'rename', 'table', { 'schema-name': 'shop', 'table-name': '%' }, { value: 'everything' })));
    expect(tables.map((e) => e.message)).toContainEqual('rule 2: tables shop.orders and shop.order_items would both become shop.everything (DMS does not replicate two tables into one)');
    const columns = errors(apply(shop(), transformation(4, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }, { value: 'customer' })));
    expect(columns.map((e) => e.message)).toEqual(['rule 4: table shop.orders would have two columns named customer']);
    const index = errors(apply(shop(), transformation(6, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'order_items' }, { value: 'orders_pkey' })));
    expect(index[0]!.message).toContain('would both be named shop.orders_pkey');
  });

  test('a partition and its parent must change alike', () => {
    const model: SchemaModel = {
      schemas: ['s'],
      extensions: [],
      types: [],
      sequences: [],
      tables: [
        table('s', 'events', { columns: [col('id'), col('at', 'date')], partitioned: true, partitionBy: 'RANGE (at)' }),
        table('s', 'events_2024', { columns: [col('id'), col('at', 'date')], partitionOf: { parent: { schema: 's', name: 'events' }, bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')" } }),
      ],
    };
    const parentOnly = errors(apply(model, transformation(2, 'rename', 'column', { 'schema-name': 's', 'table-name': 'events', 'column-name': 'at' }, { value: 'happened_at' })));
    expect(parentOnly.map((e) => e.message)).toEqual([
      "rule 2: s.events_2024 and its parent s.events would differ in columns at, happened_at: a partition must have exactly its parent's columns (make the rule match both)",
    ]);
    const both = ok(apply(model, transformation(2, 'rename', 'column', { 'schema-name': 's', 'table-name': 'events%', 'column-name': 'at' }, { value: 'happened_at' })));
    expect(both.tables[0]!.partitionBy).toBe('RANGE ("happened_at")');
    const moved = ok(apply(model, transformation(3, 'rename', 'schema', { 'schema-name': 's' }, { value: 'ev' })));
    expect(moved.tables[1]!.partitionOf!.parent).toEqual({ schema: 'ev', name: 'events' });
  });
});

describe('references kept right', () => {
  test('a foreign key recorded without `references` (models before 0.3) follows its parent by the name in its definition', () => {
    const model = shop();
    delete model.tables[1]!.foreignKeys[0]!.references;
    const m = ok(apply(model, transformation(2, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'purchases' })));
    expect(find(m, 'order_items').foreignKeys[0]).toEqual({ name: 'order_items_order_id_fkey', definition: 'FOREIGN KEY (order_id) REFERENCES "shop"."purchases"(id) ON DELETE CASCADE' });
  });

  test('a foreign key in a form dbferry does not rewrite is refused when its parent is renamed', () => {
    const model = shop();
    model.tables[1]!.foreignKeys[0]!.definition = 'FOREIGN KEY (order_id) REFERENCES shop.orders ON DELETE CASCADE';
    const e = errors(apply(model, transformation(2, 'rename', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'purchases' })));
    expect(e.map((x) => x.message)).toEqual([
      'rule 2: cannot rewrite foreign key order_items_order_id_fkey of shop.order_items for the new name of shop.orders: it does not have the form FOREIGN KEY (…) REFERENCES table(…) that dbferry rewrites',
    ]);
  });

  test('an inheritance child keeps its parent\'s columns', () => {
    const model: SchemaModel = {
      schemas: ['s'],
      extensions: [],
      types: [],
      sequences: [],
      tables: [
        table('s', 'animal', { columns: [col('id'), col('name', 'text')] }),
        table('s', 'dog', { columns: [col('id', 'integer', { inherited: true }), col('name', 'text', { inherited: true }), col('breed', 'text')], inherits: [{ schema: 's', name: 'animal' }] }),
      ],
    };
    const parentOnly = errors(apply(model, transformation(2, 'convert-uppercase', 'column', { 'schema-name': 's', 'table-name': 'animal', 'column-name': 'name' })));
    expect(parentOnly[0]!.message).toBe("rule 2: s.dog and its parent s.animal would differ in columns NAME, name: an inheritance child has its parents' columns (make the rule match both)");
    const both = ok(apply(model, transformation(2, 'convert-uppercase', 'column', { 'schema-name': 's', 'table-name': '%', 'column-name': 'name' })));
    expect(both.tables[1]!.columns.map((c) => c.name)).toEqual(['id', 'NAME', 'breed']);
    const moved = ok(apply(model, transformation(3, 'add-prefix', 'table', { 'schema-name': 's', 'table-name': '%' }, { value: 'zoo_' })));
    expect(moved.tables[1]!.inherits).toEqual([{ schema: 's', name: 'zoo_animal' }]);
  });

  test('a serial sequence stays in its schema; removing its column leaves it unowned', () => {
    const model = shop();
    model.sequences.push({ schema: 'shop', name: 'order_items_line_seq', dataType: 'integer', start: '1', increment: '1', min: '1', max: '2147483647', cache: '1', cycle: false, lastValue: null, isCalled: false, identity: false, ownedBy: { table: { schema: 'shop', name: 'orders' }, column: 'note' } });
    const r = apply(model, transformation(2, 'remove-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }));
    const seq = ok(r).sequences[1]!;
    expect(seq.ownedBy).toBeUndefined();
    expect(r.changes).toContainEqual(expect.objectContaining({ kind: 'sequence', message: 'sequence shop.order_items_line_seq is no longer owned by a column (note is removed)' }));
    const moved = ok(apply(model, transformation(3, 'rename', 'schema', { 'schema-name': 'shop' }, { value: 'app' })));
    expect(moved.sequences.map((s) => `${s.schema}.${s.name}`)).toEqual(['app.orders_id_seq', 'shop.order_items_line_seq']);
    // The serial sequence keeps its schema on the target.
    expect(moved.schemas).toEqual(['shop', 'app']);
  });
});

describe('column rules', () => {
  test('a rule that loses many columns to another gets one note, not one per column', () => {
    const model = shop();
    model.tables[1]!.checks = [];
    const r = apply(
      model,
      transformation(2, 'convert-uppercase', 'column', { 'schema-name': 'shop', 'table-name': '%', 'column-name': '%' }),
      transformation(3, 'add-prefix', 'column', { 'schema-name': 'shop', 'table-name': '%', 'column-name': '%' }, { value: 'c_' }),
    );
    expect(ok(r).tables[0]!.columns.map((c) => c.name)).toEqual(['ID', 'CUSTOMER', 'TOTAL', 'NOTE']);
    expect(r.changes.filter((c) => c.kind === 'not-applied')).toEqual([
      {
        ruleId: '3',
        kind: 'not-applied',
        severity: 'warning',
        message:
          'rule 3 (add-prefix) does not apply to column shop.orders.id, column shop.orders.customer, column shop.orders.total, column shop.orders.note, column shop.order_items.order_id and 2 more: ' +
          'rule 2 (convert-uppercase) does, and DMS applies one rule per object, the one with the lower rule-id',
      },
    ]);
  });

  test('remove-column leaves the column out and records it', () => {
    const r = apply(shop(), transformation(2, 'remove-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }));
    const orders = find(ok(r), 'orders');
    expect(orders.columns.map((c) => c.name)).toEqual(['id', 'customer', 'total']);
    expect(orders.removedColumns).toEqual([{ name: 'note', ruleId: '2' }]);
    expect(r.changes).toContainEqual({ ruleId: '2', kind: 'remove-column', severity: 'change', table: { schema: 'shop', name: 'orders' }, message: 'column note removed' });
  });

  test('remove-column is refused for key columns and columns an index or constraint uses', () => {
    const remove = (id: number, tableName: string, column: string) => transformation(id, 'remove-column', 'column', { 'schema-name': 'shop', 'table-name': tableName, 'column-name': column });
    expect(errors(apply(shop(), remove(2, 'orders', 'id'))).map((e) => e.message)).toEqual(['rule 2: cannot remove column shop.orders.id: it is in the table\'s primary key']);
    expect(errors(apply(shop(), remove(3, 'orders', 'total'))).map((e) => e.message)).toEqual([
      'rule 3: cannot remove column shop.orders.total: index orders_total_idx uses it (dbferry does not drop or rewrite those for you)',
    ]);
    expect(errors(apply(shop(), remove(4, 'orders', 'customer'))).map((e) => e.message)).toEqual([
      'rule 4: cannot remove column shop.orders.customer: unique constraint orders_customer_key uses it (dbferry does not drop or rewrite those for you)',
    ]);
    expect(errors(apply(shop(), remove(5, 'order_items', 'qty')))[0]!.message).toContain('check constraint order_items_qty_check uses it');
  });

  test('a removed column is not renamed as well: the other rule gets a warning', () => {
    const r = apply(
      shop(),
      transformation(2, 'remove-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }),
      transformation(3, 'convert-uppercase', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': '%' }),
    );
    expect(find(ok(r), 'orders').columns.map((c) => c.name)).toEqual(['ID', 'CUSTOMER', 'TOTAL']);
    expect(r.changes).toContainEqual(expect.objectContaining({ ruleId: '3', kind: 'not-applied', message: 'rule 3 does not apply to shop.orders.note: rule 2 removes that column' }));
  });

  test('add-column with an expression over source columns, read by their target names', () => {
    const r = apply(
      shop(),
      transformation(2, 'rename', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'customer' }, { value: 'Customer "Name"' }),
      transformation(3, 'add-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'label', expression: "$customer || ' #' || $id", 'data-type': { type: 'string', length: 60 } }),
      transformation(4, 'add-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'doubled', expression: '$total * 2', 'data-type': { type: 'numeric', precision: 14, scale: 2 } }),
      transformation(5, 'add-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'loaded_at', 'data-type': { type: 'datetime', precision: 6 } }),
    );
    const orders = find(ok(r), 'orders');
    expect(orders.columns.slice(4)).toEqual([
      {
        name: 'label',
        type: 'varchar(60)',
        notNull: false,
        binaryCopySafe: true,
        added: { kind: 'expression', ruleId: '3', sql: `CAST(((CAST("Customer ""Name""" AS text) || ' #') || CAST("id" AS text)) AS text)` },
      },
      { name: 'doubled', type: 'numeric(14,2)', notNull: false, binaryCopySafe: true, added: { kind: 'expression', ruleId: '4', sql: 'CAST(("total" * 2) AS numeric(14,2))' } },
      { name: 'loaded_at', type: 'timestamp(6)', notNull: false, binaryCopySafe: true, added: { kind: 'expression', ruleId: '5', sql: 'NULL' } },
    ]);
    expect(r.changes).toContainEqual(expect.objectContaining({ ruleId: '3', kind: 'add-column', message: `column label varchar(60) added: $customer || ' #' || $id` }));
  });

  test('add-column expressions name existing, kept source columns', () => {
    const add = (expression: string) => transformation(3, 'add-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'x', expression, 'data-type': { type: 'int8' } });
    expect(errors(apply(shop(), add('$ID + 1')))).toEqual([
      { ruleId: '3', path: 'tables.mappings.rules[1].expression', message: 'rule 3: expression reads $ID: shop.orders has no such source column (expressions name source columns, case-sensitively)' },
    ]);
    expect(errors(apply(shop(), add('$AR_H_TIMESTAMP')))[0]!.message).toContain('DMS header and metadata variables are not supported');
    const removed = errors(apply(shop(), add('length($note)'), transformation(4, 'remove-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' })));
    expect(removed.map((e) => e.message)).toEqual(['rule 3: expression reads $note, which rule 4 removes from shop.orders']);
    const clash = errors(apply(shop(), transformation(3, 'add-column', 'column', { 'schema-name': 'shop', 'table-name': 'orders' }, { value: 'note', 'data-type': { type: 'int8' } })));
    expect(clash.map((e) => e.message)).toEqual(['rule 3: table shop.orders would have two columns named note']);
  });

  test('change-data-type records the old type; binary COPY no longer fits', () => {
    const r = apply(shop(), transformation(2, 'change-data-type', 'column', { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }, { 'data-type': { type: 'string', length: 200 } }));
    const note = find(ok(r), 'orders').columns[3]!;
    expect(note).toEqual({ name: 'note', type: 'varchar(200)', notNull: false, binaryCopySafe: false, retypedFrom: 'text' });
    expect(r.changes).toContainEqual(expect.objectContaining({ ruleId: '2', kind: 'change-data-type', message: 'column note: text → varchar(200)' }));
  });

  test('change-data-type is refused on keys, generated columns and columns constraints use', () => {
    const retype = (tableName: string, column: string, type: string) =>
      transformation(2, 'change-data-type', 'column', { 'schema-name': 'shop', 'table-name': tableName, 'column-name': column }, { 'data-type': { type } });
    expect(errors(apply(shop(), retype('orders', 'id', 'int4')))[0]!.message).toContain('cannot change the type of column shop.orders.id: it is in a primary key or unique constraint');
    expect(errors(apply(shop(), retype('orders', 'customer', 'clob')))[0]!.message).toContain('it is in a primary key or unique constraint');
    expect(errors(apply(shop(), retype('order_items', 'qty', 'string')))[0]!.message).toContain('check constraint order_items_qty_check uses it');
    // A plain index item takes the new type along.
    expect(find(ok(apply(shop(), retype('orders', 'total', 'real8'))), 'orders').columns[2]!.type).toBe('double precision');
    const generated = { ...shop(), tables: [table('shop', 'g', { columns: [col('a'), col('b', 'integer', { generated: '(a * 2)' })] })] };
    expect(errors(apply(generated, retype('g', 'b', 'int8')))[0]!.message).toContain('it is a generated column');
    expect(errors(apply(generated, retype('g', 'a', 'int8')))[0]!.message).toContain('generated column b uses it');
  });

  test('a data-type filter selects columns by the DMS type DMS reads them as (MySQL source)', () => {
    const model: SchemaModel = {
      schemas: ['shop'],
      extensions: [],
      types: [],
      sequences: [],
      tables: [
        table('shop', 'stock', {
          columns: [
            col('a', 'integer', { sourceType: 'int(11)', conversion: 'integer' }),
            col('b', 'bigint', { sourceType: 'int(10) unsigned', conversion: 'integer' }),
            col('c', 'bigint', { sourceType: 'bigint(20)', conversion: 'integer' }),
          ],
        }),
      ],
    };
    const widen = transformation(2, 'change-data-type', 'column', { 'schema-name': 'shop', 'table-name': '%', 'column-name': '%', 'data-type': { type: 'int4' } }, { 'data-type': { type: 'int8' } });
    const m = ok(applyTransformations(model, [selectAll, widen], 'mysql'));
    expect(m.tables[0]!.columns.map((c) => c.type)).toEqual(['bigint', 'bigint', 'bigint']);
    expect(m.tables[0]!.columns.map((c) => c.retypedFrom)).toEqual(['integer', undefined, undefined]);
  });
});

describe('define-primary-key', () => {
  const log = (): SchemaModel => ({
    schemas: ['app'],
    extensions: [],
    types: [],
    sequences: [],
    tables: [table('app', 'log', { columns: [col('host', 'text'), col('at', 'timestamp without time zone'), col('msg', 'text')] })],
  });

  test('sets the primary key (its columns become NOT NULL), by source column names', () => {
    const r = apply(
      log(),
      transformation(2, 'define-primary-key', 'table', { 'schema-name': 'app', 'table-name': 'log' }, { 'primary-key-def': { name: 'log-primary-key', columns: ['host', 'at'] } }),
      transformation(3, 'rename', 'column', { 'schema-name': 'app', 'table-name': 'log', 'column-name': 'at' }, { value: 'logged_at' }),
    );
    const t = ok(r).tables[0]!;
    expect(t.primaryKey).toEqual({ name: 'log-primary-key', definition: 'PRIMARY KEY ("host", "logged_at")', columns: ['host', 'logged_at'] });
    expect(t.columns.map((c) => c.notNull)).toEqual([true, true, false]);
    expect(r.changes).toContainEqual(expect.objectContaining({ ruleId: '2', kind: 'define-primary-key', message: 'primary key log-primary-key (host, logged_at); its columns become NOT NULL' }));
  });

  test('origin unique-index adds a unique constraint instead', () => {
    const t = ok(apply(log(), transformation(2, 'define-primary-key', 'table', { 'schema-name': 'app', 'table-name': 'log' }, { 'primary-key-def': { name: 'log_uq', origin: 'unique-index', columns: ['msg'] } }))).tables[0]!;
    expect(t.primaryKey).toBeUndefined();
    expect(t.uniques).toEqual([{ name: 'log_uq', definition: 'UNIQUE ("msg")' }]);
  });

  test('unknown columns, and keys foreign keys would lose, are refused', () => {
    const e = errors(apply(log(), transformation(2, 'define-primary-key', 'table', { 'schema-name': 'app', 'table-name': 'log' }, { 'primary-key-def': { name: 'pk', columns: ['HOST'] } })));
    expect(e).toEqual([{ ruleId: '2', path: 'tables.mappings.rules[1].primary-key-def.columns', message: 'rule 2: table app.log has no column "HOST" (primary-key-def lists source column names)' }]);
    const lost = errors(apply(shop(), transformation(3, 'define-primary-key', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }, { 'primary-key-def': { name: 'pk', columns: ['note'] } })));
    expect(lost[0]!.message).toBe(
      'rule 3: foreign key order_items_order_id_fkey of shop.order_items references table shop.orders, which would no longer have a primary key or unique constraint on the columns it references',
    );
  });
});

describe('rules that did not go through the plan schema', () => {
  test('applyTransformations checks each rule as the plan schema does', () => {
    const r = apply(shop(), transformation(4, 'remove-column', 'table', { 'schema-name': 'shop', 'table-name': 'orders' }));
    expect(errors(r)).toEqual([{ ruleId: '4', path: 'tables.mappings.rules[1].rule-action', message: 'rule 4: remove-column applies to rule-target column, not to a table' }]);
  });
});

describe('a realistic DMS table mapping', () => {
  /** A MySQL source, as dbferry's MySQL introspection renders it (quoted identifiers). */
  const source = (): SchemaModel => ({
    schemas: ['SHOP'],
    extensions: [],
    types: [],
    sequences: [
      { schema: 'SHOP', name: 'CUSTOMERS_ID_seq', dataType: 'integer', start: '1', increment: '1', min: '1', max: '2147483647', cache: '1', cycle: false, lastValue: '9', isCalled: true, ownedBy: { table: { schema: 'SHOP', name: 'CUSTOMERS' }, column: 'ID' }, identity: true },
    ],
    tables: [
      table('SHOP', 'CUSTOMERS', {
        columns: [
          col('ID', 'integer', { notNull: true, identity: 'by-default', identitySequence: { schema: 'SHOP', name: 'CUSTOMERS_ID_seq' }, sourceType: 'int(11)', conversion: 'integer', binaryCopySafe: false }),
          col('FIRST_NAME', 'character varying(40)', { sourceType: 'varchar(40)', conversion: 'text', binaryCopySafe: false }),
          col('LAST_NAME', 'character varying(40)', { sourceType: 'varchar(40)', conversion: 'text', binaryCopySafe: false }),
          col('SSN', 'character varying(11)', { sourceType: 'varchar(11)', conversion: 'text', binaryCopySafe: false }),
          col('POINTS', 'integer', { sourceType: 'int(11)', conversion: 'integer', binaryCopySafe: false }),
        ],
        primaryKey: { name: 'CUSTOMERS_pkey', definition: 'PRIMARY KEY ("ID")', columns: ['ID'] },
        indexes: [{ name: 'LAST_NAME_IDX', definition: 'CREATE INDEX "LAST_NAME_IDX" ON "SHOP"."CUSTOMERS" USING btree ("LAST_NAME")' }],
      }),
      table('SHOP', 'ORDER_LOG', {
        columns: [
          col('CUSTOMER_ID', 'integer', { notNull: true, sourceType: 'int(11)', conversion: 'integer', binaryCopySafe: false }),
          col('AT', 'timestamp(0) without time zone', { notNull: true, sourceType: 'datetime', conversion: 'datetime', binaryCopySafe: false }),
          col('AMOUNT', 'numeric(10,2)', { sourceType: 'decimal(10,2)', conversion: 'decimal', binaryCopySafe: false }),
        ],
        foreignKeys: [{ name: 'ORDER_LOG_ibfk_1', definition: 'FOREIGN KEY ("CUSTOMER_ID") REFERENCES "SHOP"."CUSTOMERS"("ID")', references: { schema: 'SHOP', name: 'CUSTOMERS' } }],
      }),
      table('SHOP', 'TMP_IMPORT', { columns: [col('X', 'text', { sourceType: 'text', conversion: 'text', binaryCopySafe: false })] }),
    ],
  });

  const mapping = {
    rules: [
      { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'shop', 'object-locator': { 'schema-name': 'SHOP', 'table-name': '%' }, 'rule-action': 'include' },
      { 'rule-type': 'selection', 'rule-id': '2', 'rule-name': 'no-tmp', 'object-locator': { 'schema-name': 'SHOP', 'table-name': 'TMP_%' }, 'rule-action': 'exclude' },
      { 'rule-type': 'transformation', 'rule-id': '3', 'rule-name': 'schema', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'SHOP' }, 'rule-action': 'rename', value: 'sales' },
      { 'rule-type': 'transformation', 'rule-id': '4', 'rule-name': 'tables', 'rule-target': 'table', 'object-locator': { 'schema-name': 'SHOP', 'table-name': '%' }, 'rule-action': 'add-prefix', value: 'crm_' },
      { 'rule-type': 'transformation', 'rule-id': '5', 'rule-name': 'lower-schemas', 'rule-target': 'schema', 'object-locator': { 'schema-name': '%' }, 'rule-action': 'convert-lowercase' },
      { 'rule-type': 'transformation', 'rule-id': '6', 'rule-name': 'lower-columns', 'rule-target': 'column', 'object-locator': { 'schema-name': '%', 'table-name': '%', 'column-name': '%' }, 'rule-action': 'convert-lowercase' },
      { 'rule-type': 'transformation', 'rule-id': '7', 'rule-name': 'drop-ssn', 'rule-target': 'column', 'object-locator': { 'schema-name': 'SHOP', 'table-name': 'CUSTOMERS', 'column-name': 'SSN' }, 'rule-action': 'remove-column' },
      {
        'rule-type': 'transformation',
        'rule-id': '8',
        'rule-name': 'full-name',
        'rule-target': 'column',
        'object-locator': { 'schema-name': 'SHOP', 'table-name': 'CUSTOMERS' },
        'rule-action': 'add-column',
        value: 'full_name',
        expression: "CASE WHEN $FIRST_NAME IS NULL THEN $LAST_NAME ELSE $FIRST_NAME || ' ' || $LAST_NAME END",
        'data-type': { type: 'string', length: 81 },
      },
      { 'rule-type': 'transformation', 'rule-id': '9', 'rule-name': 'wider-points', 'rule-target': 'column', 'object-locator': { 'schema-name': 'SHOP', 'table-name': 'CUSTOMERS', 'column-name': 'POINTS' }, 'rule-action': 'change-data-type', 'data-type': { type: 'int8' } },
      { 'rule-type': 'transformation', 'rule-id': '10', 'rule-name': 'log-key', 'rule-target': 'table', 'object-locator': { 'schema-name': 'SHOP', 'table-name': 'ORDER_LOG' }, 'rule-action': 'define-primary-key', 'primary-key-def': { name: 'order_log_pk', origin: 'primary-key', columns: ['CUSTOMER_ID', 'AT'] } },
    ],
  };

  test('parses as a plan and maps the MySQL schema to the intended target', () => {
    const plan = parsePlan({ name: 'shop', source: { engine: 'mysql', url: 'env:S' }, target: { engine: 'postgres', url: 'env:T' }, tables: { mappings: mapping } });
    if (!plan.ok) throw new Error(JSON.stringify(plan.issues));
    // Selection runs first (introspection reads only the selected tables): TMP_IMPORT is not in the model.
    const model = { ...source(), tables: source().tables.filter((t) => t.name !== 'TMP_IMPORT') };
    const r = applyTransformations(model, plan.plan.tables.mappings!.rules, 'mysql');
    const m = ok(r);

    expect(m.schemas).toEqual(['sales']);
    expect(m.tables.map((t) => [t.schema, t.name, t.source])).toEqual([
      ['sales', 'crm_CUSTOMERS', { schema: 'SHOP', name: 'CUSTOMERS' }],
      ['sales', 'crm_ORDER_LOG', { schema: 'SHOP', name: 'ORDER_LOG' }],
    ]);
    const [customers, log] = m.tables as [MappedSchemaModel['tables'][number], MappedSchemaModel['tables'][number]];
    expect(customers.columns.map((c) => [c.name, c.type, c.sourceName ?? null])).toEqual([
      ['id', 'integer', 'ID'],
      ['first_name', 'character varying(40)', 'FIRST_NAME'],
      ['last_name', 'character varying(40)', 'LAST_NAME'],
      ['points', 'bigint', 'POINTS'],
      ['full_name', 'varchar(81)', null],
    ]);
    expect(customers.removedColumns).toEqual([{ name: 'SSN', ruleId: '7' }]);
    expect(customers.columns[4]!.added).toEqual({
      kind: 'expression',
      ruleId: '8',
      sql: `CAST((CASE WHEN ("first_name" IS NULL) THEN "last_name" ELSE ((CAST("first_name" AS text) || ' ') || CAST("last_name" AS text)) END) AS text)`,
    });
    expect(customers.primaryKey).toEqual({ name: 'CUSTOMERS_pkey', definition: 'PRIMARY KEY ("id")', columns: ['id'] });
    expect(customers.indexes[0]!.definition).toBe('CREATE INDEX "LAST_NAME_IDX" ON "sales"."crm_CUSTOMERS" USING btree ("last_name")');
    expect(m.sequences[0]).toMatchObject({ schema: 'sales', name: 'CUSTOMERS_ID_seq', ownedBy: { table: { schema: 'sales', name: 'crm_CUSTOMERS' }, column: 'id' } });
    expect(customers.columns[0]!.identitySequence).toEqual({ schema: 'sales', name: 'CUSTOMERS_ID_seq' });
    expect(log.primaryKey).toEqual({ name: 'order_log_pk', definition: 'PRIMARY KEY ("customer_id", "at")', columns: ['customer_id', 'at'] });
    expect(log.foreignKeys[0]).toEqual({
      name: 'ORDER_LOG_ibfk_1',
      definition: 'FOREIGN KEY ("customer_id") REFERENCES "sales"."crm_CUSTOMERS"("id")',
      references: { schema: 'sales', name: 'crm_CUSTOMERS' },
    });

    // Where each change came from, per table; rule 5 lost the schema to rule 3 (lower rule-id).
    const about = (name: string) => r.changes.filter((c) => c.table?.name === name).map((c) => `${c.ruleId} ${c.kind}: ${c.message}`);
    expect(about('crm_CUSTOMERS')).toEqual([
      '9 change-data-type: column POINTS: integer → bigint',
      '3 rename-schema: schema SHOP → sales',
      '4 rename-table: table CUSTOMERS → crm_CUSTOMERS',
      '6 rename-column: column ID → id',
      '6 rename-column: column FIRST_NAME → first_name',
      '6 rename-column: column LAST_NAME → last_name',
      '6 rename-column: column POINTS → points',
      '7 remove-column: column SSN removed',
      '8 add-column: column full_name varchar(81) added: ' + mapping.rules[7]!.expression,
      '3 sequence: identity sequence SHOP.CUSTOMERS_ID_seq moves with its table to schema sales',
    ]);
    expect(r.changes.filter((c) => c.severity === 'warning').map((c) => c.message)).toEqual([
      'rule 5 (convert-lowercase) does not apply to schema SHOP: rule 3 (rename) does, and DMS applies one rule per object, the one with the lower rule-id',
      'rule 6 does not apply to SHOP.CUSTOMERS.SSN: rule 7 removes that column',
    ]);
  });
});

describe('DMS data types', () => {
  test('on PostgreSQL', () => {
    expect(postgresType({ type: 'string', length: 10 })).toBe('varchar(10)');
    expect(postgresType({ type: 'wstring' })).toBe('text');
    expect(postgresType({ type: 'nclob' })).toBe('text');
    expect(postgresType({ type: 'int1' })).toBe('smallint');
    expect(postgresType({ type: 'uint4' })).toBe('bigint');
    expect(postgresType({ type: 'uint8' })).toBe('numeric(20,0)');
    expect(postgresType({ type: 'numeric', precision: 10, scale: 2 })).toBe('numeric(10,2)');
    expect(postgresType({ type: 'numeric', precision: 10 })).toBe('numeric(10)');
    expect(postgresType({ type: 'real4' })).toBe('real');
    expect(postgresType({ type: 'real8' })).toBe('double precision');
    expect(postgresType({ type: 'datetime', scale: 3 })).toBe('timestamp(3)');
    expect(postgresType({ type: 'datetime' })).toBe('timestamp');
    expect(postgresType({ type: 'bytes', length: 16 })).toBe('bytea');
    expect(postgresType({ type: 'boolean' })).toBe('boolean');
  });

  test('what DMS reads source columns as', () => {
    expect(dmsTypeOf(col('a', 'bigint', { sourceType: 'int(10) unsigned' }), 'mysql')).toEqual({ type: 'uint4' });
    expect(dmsTypeOf(col('a', 'numeric(10,2)', { sourceType: 'decimal(10,2)' }), 'mysql')).toEqual({ type: 'numeric', precision: 10, scale: 2 });
    expect(dmsTypeOf(col('a', 'text', { sourceType: 'varchar(45)' }), 'mysql')).toEqual({ type: 'wstring', length: 45 });
    expect(dmsTypeOf(col('a', 'timestamp(3) without time zone', { sourceType: 'datetime(3)' }), 'mysql')).toEqual({ type: 'datetime', scale: 3 });
    expect(dmsTypeOf(col('a', 'character varying(20)'), 'postgres')).toEqual({ type: 'wstring', length: 20 });
    expect(dmsTypeOf(col('a', 'timestamp with time zone'), 'postgres')).toEqual({ type: 'datetime', scale: 6 });
    expect(dmsTypeOf(col('a', 'integer[]'), 'postgres')).toEqual({ type: 'nclob' });
    expect(dmsTypeOf(col('a', '"s"."mood"'), 'postgres')).toBeUndefined();
  });
});

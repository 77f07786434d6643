import { targetModel } from '../../plan/target-model';
import { parsePlan } from '../../plan/parse-plan';
import { sourceTable, type SchemaModel } from '../../plan/schema-model';
import { schemaModel, tableModel } from '../support/models';
import { columnRules, mapRelation } from '../../activities/mapped-source';

const source: SchemaModel = schemaModel([
    tableModel('Sales', 'Customer', [['CustId', 'integer'], ['CustName', 'character varying(50)'], ['Email', 'character varying(100)'], ['Secret', 'character varying(20)'], ['Score', 'integer']], ['CustId']),
    tableModel('Sales', 'Order', [['OrderId', 'integer'], ['CustId', 'integer']], ['OrderId']),
]);

const rules = [
  { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'sales', 'object-locator': { 'schema-name': 'Sales', 'table-name': '%' }, 'rule-action': 'include' },
  { 'rule-type': 'transformation', 'rule-id': '3', 'rule-name': '3', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer', 'column-name': 'CustName' }, 'rule-action': 'rename', value: 'name' },
  { 'rule-type': 'transformation', 'rule-id': '4', 'rule-name': '4', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer', 'column-name': 'Secret' }, 'rule-action': 'remove-column' },
  { 'rule-type': 'transformation', 'rule-id': '6', 'rule-name': '6', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer' }, 'rule-action': 'add-column', value: 'email_key', expression: "lower($Email) || '#'", 'data-type': { type: 'string', length: 120 } },
  { 'rule-type': 'transformation', 'rule-id': '8', 'rule-name': '8', 'rule-target': 'table', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Order' }, 'rule-action': 'add-prefix', value: 't_' },
  { 'rule-type': 'transformation', 'rule-id': '10', 'rule-name': '10', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'Sales' }, 'rule-action': 'rename', value: 'shop' },
  { 'rule-type': 'transformation', 'rule-id': '12', 'rule-name': '12', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': '%', 'column-name': '%' }, 'rule-action': 'convert-lowercase' },
];

function plan(extra: Record<string, unknown> = {}) {
  const r = parsePlan({ name: 'm', source: { engine: 'mysql', url: 'env:S' }, target: { engine: 'postgres', url: 'env:T' }, tables: { mappings: { rules } }, ...extra });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.plan;
}

describe('the target model: a DMS mapping, then key redesign', () => {
  test('names, removed and added columns; the source shape reads the source names back', () => {
    const r = targetModel(source, plan());
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const [customer, order] = r.model.tables;
    expect([customer!.schema, customer!.name, order!.schema, order!.name]).toEqual(['shop', 'Customer', 'shop', 't_Order']);
    expect(customer!.columns.map((c) => c.name)).toEqual(['custid', 'name', 'email', 'score', 'email_key']);
    expect(customer!.columns[4]!.added).toMatchObject({ kind: 'expression', ruleId: '6' });
    expect(customer!.removedColumns).toEqual([{ name: 'Secret', ruleId: '4' }]);
    expect(customer!.primaryKey?.columns).toEqual(['custid']);
    const back = sourceTable(customer!);
    expect([back.schema, back.name, back.columns.map((c) => c.name), back.primaryKey?.columns]).toEqual(['Sales', 'Customer', ['CustId', 'CustName', 'Email', 'Score'], ['CustId']]);
    // A change stream's relation, in the target's names, without the removed column.
    const rel = mapRelation(
      { id: 1, schema: 'Sales', name: 'Customer', fullIdentity: false, columns: ['CustId', 'CustName', 'Email', 'Secret', 'Score'].map((name) => ({ name, type: 'integer', notNull: false, volatileDefault: false })) },
      customer,
    );
    expect([rel.relation.schema, rel.relation.name, rel.relation.columns.map((c) => c.name), rel.keep]).toEqual(['shop', 'Customer', ['custid', 'name', 'email', 'score'], [0, 1, 2, 4]]);
  });

  test('key redesign applies to the mapped names', () => {
    const r = targetModel(source, plan({ keys: [{ table: 'shop.t_Order', surrogateKey: { column: 'id', type: 'bigint' } }] }));
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.model.tables[1]!.surrogateKey?.column).toBe('id');
    expect(sourceTable(r.model.tables[1]!).columns.map((c) => c.name)).toEqual(['OrderId', 'CustId']);
  });

  test('a rule that does not fit the source is an issue naming the rule', () => {
    const bad = [...rules, { 'rule-type': 'transformation', 'rule-id': '20', 'rule-name': '20', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Order', 'column-name': 'OrderId' }, 'rule-action': 'remove-column' }];
    const p = parsePlan({ name: 'm', source: { engine: 'mysql', url: 'env:S' }, target: { engine: 'postgres', url: 'env:T' }, tables: { mappings: { rules: bad } } });
    if (!p.ok) throw new Error(JSON.stringify(p.issues));
    const r = targetModel(source, p.plan);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toContainEqual({ path: expect.stringContaining('tables.mappings.rules[7]'), message: expect.stringMatching(/^rule 20: .*primary key/) });
  });

  test('define-primary-key is refused with CDC from PostgreSQL, and beside keys on the mapped name', () => {
    const definer = { 'rule-type': 'transformation', 'rule-id': '30', 'rule-name': '30', 'rule-target': 'table', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Order' }, 'rule-action': 'define-primary-key', 'primary-key-def': { name: 'o_pk', columns: ['OrderId', 'CustId'] } };
    const withRule = (extra: Record<string, unknown>) => {
      const p = parsePlan({ name: 'm', source: { engine: 'mysql', url: 'env:S' }, target: { engine: 'postgres', url: 'env:T' }, tables: { mappings: { rules: [...rules, definer] } }, ...extra });
      if (!p.ok) throw new Error(JSON.stringify(p.issues));
      return targetModel(source, p.plan);
    };
    expect(withRule({}).ok).toBe(true);
    // MySQL's row images are whole rows: CDC finds rows by any key. pgoutput's are not.
    expect(withRule({ mode: 'full-load-and-cdc' }).ok).toBe(true);
    const cdc = withRule({ mode: 'full-load-and-cdc', source: { engine: 'postgres', url: 'env:S' } });
    expect(cdc.ok ? [] : cdc.issues).toEqual([{ path: 'tables.mappings', message: expect.stringContaining('rule 30: define-primary-key on shop.t_Order is not supported with CDC from PostgreSQL') }]);
    const both = withRule({ keys: [{ table: 'shop.t_Order', surrogateKey: { column: 'id', type: 'bigint' } }] });
    expect(both.ok ? [] : both.issues).toEqual([{ path: 'keys[0].table', message: expect.stringContaining('rule 30 (define-primary-key)') }]);
  });

  test('a column added on the source during CDC that a column rule matches pauses CDC, naming the rule', () => {
    const r = targetModel(source, plan());
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const customer = r.model.tables[0]!;
    const cols = (...names: string[]) => names.map((name) => ({ name, type: 'integer', notNull: false, volatileDefault: false }));
    const rel = (...names: string[]) => ({ id: 1, schema: 'Sales', name: 'Customer', fullIdentity: false, columns: cols(...names) });
    const compiled = columnRules(rules);
    // Rule 12 lowercases every column of Sales: a new one would need it too.
    expect(() => mapRelation(rel('CustId', 'CustName', 'Email', 'Secret', 'Score', 'Tier'), customer, compiled)).toThrow(/column Tier was added on the source and table-mapping rule 12 matches it/);
    expect(mapRelation(rel('CustId', 'CustName', 'Email', 'Secret', 'Score'), customer, compiled).relation.columns.map((c) => c.name)).toEqual(['custid', 'name', 'email', 'score']);
  });
});

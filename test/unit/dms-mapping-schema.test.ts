import { transformationRuleIssues } from '../../plan/dms-mapping-schema';
import { parsePlan, type PlanIssue } from '../../plan';

const base = {
  name: 'shop',
  source: { engine: 'mysql', url: 'env:SOURCE_URL' },
  target: { engine: 'postgres', url: 'env:TARGET_URL' },
};

const select = { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': '1', 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } };

function rule(id: string | number, fields: Record<string, unknown>): Record<string, unknown> {
  return { 'rule-type': 'transformation', 'rule-id': id, 'rule-name': String(id), ...fields };
}

const columnRule = (id: string, action: string, extra: Record<string, unknown> = {}) =>
  rule(id, { 'rule-action': action, 'rule-target': 'column', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'note' }, ...extra });

function planIssues(...rules: unknown[]): PlanIssue[] {
  const r = parsePlan({ ...base, tables: { mappings: { rules: [select, ...rules] } } });
  return r.ok ? [] : r.issues;
}

function expectIssue(rules: unknown[], path: string, message: string): void {
  expect(planIssues(...rules)).toContainEqual(expect.objectContaining({ path, message: expect.stringContaining(message) }));
}

describe('tables.mappings: transformation rules', () => {
  test('every supported action is accepted with the fields it needs, and kept as written', () => {
    const rules = [
      rule(2, { 'rule-action': 'rename', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'shop' }, value: 'app' }),
      rule(3, { 'rule-action': 'convert-lowercase', 'rule-target': 'table', 'object-locator': { 'schema-name': '%', 'table-name': '%' } }),
      rule(4, { 'rule-action': 'convert-uppercase', 'rule-target': 'column', 'object-locator': { 'schema-name': '%', 'table-name': '%', 'column-name': '%' } }),
      rule(5, { 'rule-action': 'add-prefix', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, value: 'dms_' }),
      rule(6, { 'rule-action': 'remove-prefix', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, value: 'tbl_' }),
      rule(7, { 'rule-action': 'replace-prefix', 'rule-target': 'column', 'object-locator': { 'schema-name': 'shop', 'table-name': '%', 'column-name': '%' }, value: 'new_', 'old-value': 'old_' }),
      rule(8, { 'rule-action': 'add-suffix', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, value: '_v2' }),
      rule(9, { 'rule-action': 'remove-suffix', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, value: '_tmp' }),
      rule(10, { 'rule-action': 'replace-suffix', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, value: '_b', 'old-value': '_a' }),
      columnRule('11', 'remove-column'),
      columnRule('12', 'change-data-type', { 'data-type': { type: 'numeric', precision: 12, scale: 2 } }),
      rule(13, {
        'rule-action': 'add-column',
        'rule-target': 'column',
        'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' },
        value: 'full_name',
        expression: "$first || ' ' || $last",
        'data-type': { type: 'string', length: 101 },
      }),
      rule(14, { 'rule-action': 'define-primary-key', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': 'log' }, 'primary-key-def': { name: 'log_pk', origin: 'primary-key', columns: ['id', 'at'] } }),
      columnRule('15', 'change-data-type', { 'object-locator': { 'schema-name': '%', 'table-name': '%', 'column-name': '%', 'data-type': { type: 'int4' } }, 'data-type': { type: 'int8' } }),
      rule(16, { 'rule-action': 'add-column', 'rule-target': 'column', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' }, value: 'loaded_at', 'data-type': { type: 'datetime', precision: 6 } }),
    ];
    const r = parsePlan({ ...base, tables: { mappings: { rules: [select, ...rules] } } });
    if (!r.ok) throw new Error(JSON.stringify(r.issues, null, 2));
    expect(r.plan.tables.mappings!.rules).toHaveLength(rules.length + 1);
    expect(r.plan.tables.mappings!.rules[13]).toEqual(rules[12]);
  });

  test('an unknown action or target names the rule and what is expected', () => {
    expectIssue([columnRule('7', 'frobnicate')], 'tables.mappings.rules[1].rule-action', 'expected one of rename, convert-lowercase');
    expectIssue([columnRule('7', 'frobnicate')], 'tables.mappings.rules[1].rule-action', '(rule 7), got "frobnicate"');
    expectIssue([columnRule('7', 'rename', { 'rule-target': 'view', value: 'x' })], 'tables.mappings.rules[1].rule-target', 'expected one of schema, table, column (rule 7)');
  });

  test.each([
    ['add-before-image-columns', { 'before-image-def': { 'column-prefix': 'BI_', 'column-suffix': '', 'column-filter': 'pk-only' } }, "keeps no before images"],
    ['data-masking-hash-mask', {}, 'not supported yet: data-masking-hash-mask'],
  ])('%s is refused with the reason and the rule id', (action, extra, reason) => {
    expectIssue([columnRule('9', action, extra)], 'tables.mappings.rules[1].rule-action', `rule 9: not supported`);
    expectIssue([columnRule('9', action, extra)], 'tables.mappings.rules[1].rule-action', reason);
  });

  test.each(['table-tablespace', 'index-tablespace'])('rule-target %s is refused with the reason', (target) => {
    const r = rule('4', { 'rule-action': 'rename', 'rule-target': target, 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders', 'table-tablespace-name': 'ts' }, value: 'x' });
    expectIssue([r], 'tables.mappings.rules[1].rule-target', `rule 4: not supported: ${target} rules`);
  });

  test('an action on a target it does not apply to', () => {
    const removeTable = rule('3', { 'rule-action': 'remove-column', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' } });
    expectIssue([removeTable], 'tables.mappings.rules[1].rule-action', 'rule 3: remove-column applies to rule-target column, not to a table');
    const keyOnColumn = columnRule('5', 'define-primary-key', { 'primary-key-def': { name: 'pk', columns: ['id'] } });
    expectIssue([keyOnColumn], 'tables.mappings.rules[1].rule-action', 'rule 5: define-primary-key applies to rule-target table, not to a column');
    const typeOnSchema = rule('6', { 'rule-action': 'change-data-type', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'shop' }, 'data-type': { type: 'int8' } });
    expectIssue([typeOnSchema], 'tables.mappings.rules[1].rule-action', 'rule 6: change-data-type applies to rule-target column, not to a schema');
  });

  test('fields an action needs, and fields it does not use (never ignored silently)', () => {
    expectIssue([columnRule('3', 'rename')], 'tables.mappings.rules[1].value', 'rule 3: required (rename needs the new name)');
    expectIssue([columnRule('3', 'replace-prefix', { value: 'a_' })], 'tables.mappings.rules[1].old-value', 'required (replace-prefix needs the prefix to replace)');
    expectIssue([columnRule('3', 'convert-lowercase', { value: 'x' })], 'tables.mappings.rules[1].value', 'rule 3: convert-lowercase does not use value');
    expectIssue([columnRule('3', 'remove-column', { expression: '$a' })], 'tables.mappings.rules[1].expression', 'remove-column does not use expression');
    expectIssue([columnRule('3', 'change-data-type')], 'tables.mappings.rules[1].data-type', 'required (change-data-type needs the new data type)');
    expectIssue([columnRule('3', 'add-prefix', { value: '' })], 'tables.mappings.rules[1].value', 'expected the prefix to add, not an empty string');
    expectIssue([columnRule('3', 'rename', { value: 'x', colour: 'red' })], 'tables.mappings.rules[1].colour', 'unknown field');
  });

  test('add-column: a name, a data type, an optional expression; no column-name', () => {
    const add = (extra: Record<string, unknown>) =>
      rule('8', { 'rule-action': 'add-column', 'rule-target': 'column', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' }, value: 'c', 'data-type': { type: 'int4' }, ...extra });
    expect(planIssues(add({}))).toEqual([]);
    expectIssue([add({ 'data-type': undefined })], 'tables.mappings.rules[1].data-type', 'required (add-column needs');
    expectIssue([add({ 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'x' } })], 'tables.mappings.rules[1].object-locator.column-name', 'add-column names its new column in value');
    expectIssue([add({ value: 'x'.repeat(64) })], 'tables.mappings.rules[1].value', 'PostgreSQL names are at most 63 bytes');
  });

  test('an expression that does not parse names the rule and the construct', () => {
    const add = (expression: string) =>
      rule('12', { 'rule-action': 'add-column', 'rule-target': 'column', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' }, value: 'c', 'data-type': { type: 'string', length: 10 }, expression });
    expectIssue([add('$a LIKE 1')], 'tables.mappings.rules[1].expression', 'rule 12: expression: unsupported: LIKE');
    expectIssue([add("instr($a, 'x')")], 'tables.mappings.rules[1].expression', 'rule 12: expression: unsupported function instr()');
    expectIssue([add('($a')], 'tables.mappings.rules[1].expression', 'rule 12: expression: unexpected the end of the expression');
  });

  test('locators: what each target needs', () => {
    expectIssue([columnRule('3', 'rename', { value: 'x', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' } })], 'tables.mappings.rules[1].object-locator.column-name', 'required');
    const schemaWithTable = rule('4', { 'rule-action': 'rename', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' }, value: 'x' });
    expectIssue([schemaWithTable], 'tables.mappings.rules[1].object-locator.table-name', 'a schema rule applies to the whole schema');
    const tableWithoutTable = rule('5', { 'rule-action': 'convert-lowercase', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop' } });
    expectIssue([tableWithoutTable], 'tables.mappings.rules[1].object-locator.table-name', 'rule 5: required');
    const tableWithFilter = rule('6', { 'rule-action': 'convert-lowercase', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': '%', 'data-type': { type: 'int4' } } });
    expectIssue([tableWithFilter], 'tables.mappings.rules[1].object-locator.data-type', 'not used: a data-type filter selects existing columns');
  });

  test('data types: each takes only its own parameters', () => {
    const retype = (dt: Record<string, unknown>) => columnRule('3', 'change-data-type', { 'data-type': dt });
    expectIssue([retype({ type: 'int8', length: 4 })], 'tables.mappings.rules[1].data-type.length', 'int8 takes no length');
    expectIssue([retype({ type: 'string', precision: 4 })], 'tables.mappings.rules[1].data-type.precision', 'string takes no precision');
    expectIssue([retype({ type: 'numeric', scale: 2 })], 'tables.mappings.rules[1].data-type.scale', 'a numeric scale needs a precision');
    expectIssue([retype({ type: 'numeric', precision: 4, scale: 6 })], 'tables.mappings.rules[1].data-type.scale', 'no larger than the precision');
    expectIssue([retype({ type: 'datetime', scale: 9 })], 'tables.mappings.rules[1].data-type.scale', 'not supported: 9 fractional-second digits');
    expectIssue([retype({ type: 'datetime', scale: 3, precision: 6 })], 'tables.mappings.rules[1].data-type.scale', 'once');
    expectIssue([retype({ type: 'varchar2' })], 'tables.mappings.rules[1].data-type.type', 'expected one of string, wstring');
    expectIssue([retype({ type: 'string', length: 0 })], 'tables.mappings.rules[1].data-type.length', 'expected a positive length');
  });

  test('define-primary-key: name, columns, origin', () => {
    const key = (def: Record<string, unknown>) => rule('2', { 'rule-action': 'define-primary-key', 'rule-target': 'table', 'object-locator': { 'schema-name': 'shop', 'table-name': 'log' }, 'primary-key-def': def });
    expect(planIssues(key({ name: 'log_uq', origin: 'unique-index', columns: ['a'] }))).toEqual([]);
    expectIssue([key({ name: 'pk', columns: [] })], 'tables.mappings.rules[1].primary-key-def.columns', 'expected at least one column (rule 2)');
    expectIssue([key({ name: 'pk', columns: ['a'], origin: 'index' })], 'tables.mappings.rules[1].primary-key-def.origin', 'expected one of primary-key, unique-index (rule 2)');
    expectIssue([key({ name: 'pk', columns: ['a', 'a'] })], 'tables.mappings.rules[1].primary-key-def.columns[1]', 'listed twice');
  });

  test('a transformation rule needs its own rule-id', () => {
    const r = columnRule('1', 'remove-column');
    expectIssue([r], 'tables.mappings.rules[1].rule-id', 'rule 1: rules[0] has the same rule-id');
    const { 'rule-id': _id, ...noId } = columnRule('x', 'remove-column');
    expectIssue([noId], 'tables.mappings.rules[1].rule-id', 'the rule without a rule-id: required');
  });

  test('table-settings rules are still refused, naming the rule', () => {
    const settings = { 'rule-type': 'table-settings', 'rule-id': '30', 'object-locator': { 'schema-name': 'shop', 'table-name': 'big' }, 'parallel-load': { type: 'ranges' } };
    expectIssue([settings], 'tables.mappings.rules[1]', 'not supported yet: table-settings rules (rule 30;');
  });

  test('transformation rules alone select nothing', () => {
    const r = parsePlan({ ...base, tables: { mappings: { rules: [columnRule('2', 'remove-column')] } } });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues).toContainEqual(expect.objectContaining({ path: 'tables.mappings.rules', message: expect.stringContaining('expected at least one selection rule (transformation rules') }));
  });

  test('transformationRuleIssues: the same checks for a single rule, with paths below it', () => {
    expect(transformationRuleIssues(columnRule('3', 'remove-column'))).toEqual([]);
    expect(transformationRuleIssues(columnRule('3', 'rename'))).toEqual([{ path: ['value'], message: 'rule 3: required (rename needs the new name)' }]);
    expect(transformationRuleIssues({ ...columnRule('load users', 'rename'), value: 'x', 'rule-action': 'shout' })).toEqual([
      { path: ['rule-action'], message: expect.stringContaining('(rule "load users")') },
    ]);
  });
});

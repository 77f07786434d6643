/**
 * AWS DMS table-mapping documents (`tables.mappings`): selection and transformation rules, as
 * DMS reads them. What dbferry cannot do is refused with the rule's id and the reason, never
 * dropped: a mapping runs as written or not at all. Table-settings rules are refused as not
 * supported yet.
 *
 * Transformation rules are checked here on their own (fields, action and target, expression);
 * what they do to a schema is plan/dms-transformations.ts.
 */
import { z } from 'zod';
import { parseExpression } from './dms-expression';
import { expected, nonEmptyString, oneOf, required, strict, type RawIssue } from './schema-messages';

const objectLocator = strict(
  {
    'schema-name': nonEmptyString('a schema name (% is a wildcard)', 'a schema name').describe('The source schema (MySQL: database); % is a wildcard.'),
    'table-name': nonEmptyString('a table name (% is a wildcard)', 'a table name').describe('The source table; % is a wildcard.'),
    'table-type': z.literal('table', expected('table (views are not supported yet)')).describe('table (views are not supported yet).').optional(),
  },
  'a mapping with schema-name and table-name',
  'schema-name and table-name',
).describe('The source tables the rule selects: schema-name and table-name.');

const ruleId = z.union([z.string(), z.number()], expected('a string or a number'));
const RULE_ID = 'The rule\'s id, a string or a number; messages name the rule by it.';
const RULE_NAME = 'The rule\'s name, a string or a number.';

export const selectionRuleSchema = strict(
  {
    'rule-type': z.literal('selection').describe('selection: the rule selects source tables.'),
    'rule-id': ruleId.describe(RULE_ID).optional(),
    'rule-name': ruleId.describe(RULE_NAME).optional(),
    'rule-action': oneOf(['include', 'exclude', 'explicit'], 'include, exclude or explicit').describe(
      'include (the tables the locator matches), exclude (leave them out) or explicit (one table, named without %).',
    ),
    'object-locator': objectLocator,
    'load-order': z.number(expected('a number')).describe('A number, as DMS takes it.').optional(),
    filters: z
      .array(z.unknown(), expected('a list'))
      .max(0, { error: 'not supported yet: selection rule filters (only whole tables are selected)' })
      .describe('Not supported yet: only an empty list (whole tables are selected).')
      .optional(),
  },
  'a selection rule',
).describe('A DMS selection rule: which source tables migrate.');

// ---------------------------------------------------------------------------------------------
// Transformation rules

export const TRANSFORMATION_TARGETS = ['schema', 'table', 'column'] as const;

export const TRANSFORMATION_ACTIONS = [
  'rename',
  'convert-lowercase',
  'convert-uppercase',
  'add-prefix',
  'remove-prefix',
  'replace-prefix',
  'add-suffix',
  'remove-suffix',
  'replace-suffix',
  'remove-column',
  'add-column',
  'change-data-type',
  'define-primary-key',
] as const;

export type DmsTransformationTarget = (typeof TRANSFORMATION_TARGETS)[number];
export type DmsTransformationAction = (typeof TRANSFORMATION_ACTIONS)[number];

/** Targets DMS has and dbferry refuses, with the reason. */
const REFUSED_TARGETS: Record<string, string> = {
  'table-tablespace': 'not supported: table-tablespace rules (dbferry creates tables in the target database\'s default tablespace; DMS applies these to Oracle targets)',
  'index-tablespace': 'not supported: index-tablespace rules (dbferry creates indexes in the target database\'s default tablespace; DMS applies these to Oracle targets)',
};

/** Actions DMS has and dbferry refuses, with the reason. */
const REFUSED_ACTIONS: Record<string, string> = {
  'add-before-image-columns':
    'not supported: add-before-image-columns (dbferry\'s CDC applies each change to the target row and keeps no before images in target columns)',
  'data-masking-digits-mask': 'not supported yet: data-masking-digits-mask',
  'data-masking-digits-randomize': 'not supported yet: data-masking-digits-randomize',
  'data-masking-hash-mask': 'not supported yet: data-masking-hash-mask',
};

/** DMS's own data types (`data-type.type`); plan/dms-transformations.ts maps them to PostgreSQL. */
export const DMS_DATA_TYPES = [
  'string', 'wstring', 'clob', 'nclob',
  'int1', 'int2', 'int4', 'int8', 'uint1', 'uint2', 'uint4', 'uint8',
  'numeric', 'real4', 'real8', 'boolean',
  'date', 'time', 'datetime',
  'blob', 'bytes',
] as const;

export type DmsDataTypeName = (typeof DMS_DATA_TYPES)[number];

const enumWithReasons = <const T extends readonly [string, ...string[]]>(values: T, refused: Record<string, string>, hint: string) =>
  z.enum(values, {
    error: (iss: RawIssue) => {
      if (iss.input === undefined) return required(hint);
      const reason = typeof iss.input === 'string' ? refused[iss.input] : undefined;
      return reason ?? `expected one of ${values.join(', ')}`;
    },
  });

const count = (what: string) => z.int(expected(what)).nonnegative(expected(what));

const dataTypeSchema = strict(
  {
    type: oneOf(DMS_DATA_TYPES, `a DMS data type: ${DMS_DATA_TYPES.join(', ')}`).describe('A DMS data type.'),
    length: count('a length (a positive integer)').describe('string, wstring and bytes: the length, a positive integer.').optional(),
    precision: count('a precision (an integer)').describe('numeric: the precision (1 to 1000); datetime: fractional-second digits (at most 6).').optional(),
    scale: count('a scale (an integer)').describe('numeric: the scale (needs precision); datetime: fractional-second digits (at most 6).').optional(),
  },
  'a data type ({"type": …} with length, precision or scale where the type takes them)',
  'a data type ({"type": …})',
).describe('A DMS data type: {"type": …} with length, precision or scale where the type takes them.');

export type DmsDataType = z.output<typeof dataTypeSchema>;

const transformationLocator = strict(
  {
    'schema-name': nonEmptyString('a schema name (% is a wildcard)', 'a schema name').describe('The source schema (MySQL: database); % is a wildcard.'),
    'table-name': nonEmptyString('a table name (% is a wildcard)')
      .describe('The source table (% is a wildcard); table and column rules need it.')
      .optional(),
    'table-type': z.literal('table', expected('table (views are not supported yet)')).describe('table (views are not supported yet).').optional(),
    'column-name': nonEmptyString('a column name (% is a wildcard)')
      .describe('The source column (% is a wildcard); column rules other than add-column need it.')
      .optional(),
    'data-type': dataTypeSchema.describe('Column rules other than add-column: only columns of this DMS data type.').optional(),
    'table-tablespace-name': z.unknown().describe('Not supported (tablespace rules).').optional(),
    'index-tablespace-name': z.unknown().describe('Not supported (tablespace rules).').optional(),
  },
  'a mapping with schema-name, table-name and column-name',
  'schema-name (and table-name, column-name as the rule-target needs)',
).describe('The source objects the rule applies to: schema-name, and table-name and column-name as the rule-target needs.');

const primaryKeyDef = strict(
  {
    name: nonEmptyString('a name for the key', 'the key\'s name').describe('The key\'s name.'),
    origin: oneOf(['primary-key', 'unique-index']).describe('primary-key or unique-index.').optional(),
    columns: z
      .array(nonEmptyString('a column name'), expected('a list of column names', 'the key\'s columns'))
      .min(1, expected('at least one column'))
      .describe('The key\'s columns: a non-empty list of column names, each once.'),
  },
  'a mapping with name, origin and columns',
  'name and columns',
).describe('define-primary-key: the key, {name, origin, columns}.');

export const transformationRuleSchema = strict(
  {
    'rule-type': z.literal('transformation').describe('transformation: the rule changes names, columns, types or keys.'),
    'rule-id': ruleId.describe(`${RULE_ID} Required, and no other rule may have the same one.`),
    'rule-name': ruleId.describe(RULE_NAME).optional(),
    'rule-target': enumWithReasons(TRANSFORMATION_TARGETS, REFUSED_TARGETS, TRANSFORMATION_TARGETS.join(', ')).describe('What the rule changes: schema, table or column.'),
    'rule-action': enumWithReasons(TRANSFORMATION_ACTIONS, REFUSED_ACTIONS, 'what the rule does, e.g. rename').describe('What the rule does, e.g. rename.'),
    'object-locator': transformationLocator,
    value: z.string(expected('a string')).describe('The new name, or the prefix or suffix to add, remove or put in place; add-column: the new column\'s name.').optional(),
    'old-value': z.string(expected('a string')).describe('replace-prefix, replace-suffix: the prefix or suffix to replace.').optional(),
    'data-type': dataTypeSchema.describe('add-column, change-data-type: the column\'s new DMS data type.').optional(),
    expression: z.string(expected('an expression (a string)')).describe('add-column: the value, an expression in DMS\'s SQLite subset ($column references).').optional(),
    'primary-key-def': primaryKeyDef.optional(),
    'before-image-def': z.unknown().describe('Not supported (add-before-image-columns).').optional(),
  },
  'a transformation rule',
).describe('A DMS transformation rule: renames, prefixes and suffixes, removed, added and retyped columns, primary keys.');

export type DmsTransformationRule = z.output<typeof transformationRuleSchema>;

type RuleField = 'value' | 'old-value' | 'data-type' | 'expression' | 'primary-key-def' | 'before-image-def';

interface ActionSpec {
  targets: readonly DmsTransformationTarget[];
  /** Fields the action needs, with what each holds. */
  needs: Partial<Record<RuleField, string>>;
  /** Fields the action may have. Any other field of RuleField is refused. */
  may?: readonly RuleField[];
}

const NAMED = ['schema', 'table', 'column'] as const;

const ACTIONS: Record<DmsTransformationAction, ActionSpec> = {
  rename: { targets: NAMED, needs: { value: 'the new name' } },
  'convert-lowercase': { targets: NAMED, needs: {} },
  'convert-uppercase': { targets: NAMED, needs: {} },
  'add-prefix': { targets: NAMED, needs: { value: 'the prefix to add' } },
  'remove-prefix': { targets: NAMED, needs: { value: 'the prefix to remove' } },
  'replace-prefix': { targets: NAMED, needs: { value: 'the new prefix', 'old-value': 'the prefix to replace' } },
  'add-suffix': { targets: NAMED, needs: { value: 'the suffix to add' } },
  'remove-suffix': { targets: NAMED, needs: { value: 'the suffix to remove' } },
  'replace-suffix': { targets: NAMED, needs: { value: 'the new suffix', 'old-value': 'the suffix to replace' } },
  'remove-column': { targets: ['column'], needs: {} },
  'add-column': { targets: ['column'], needs: { value: 'the new column\'s name', 'data-type': 'the new column\'s data type' }, may: ['expression'] },
  'change-data-type': { targets: ['column'], needs: { 'data-type': 'the new data type' } },
  'define-primary-key': { targets: ['table'], needs: { 'primary-key-def': 'the key: name, columns and origin' } },
};

const RULE_FIELDS: readonly RuleField[] = ['value', 'old-value', 'data-type', 'expression', 'primary-key-def', 'before-image-def'];

/** PostgreSQL truncates longer identifiers (NAMEDATALEN 64, in bytes). */
export const MAX_IDENTIFIER_BYTES = 63;

/** Counted by hand: plan/ also runs in the workflow sandbox, which has no Buffer. */
function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

export function identifierProblem(name: string): string | undefined {
  if (name.includes('\u0000')) return 'a name cannot contain a NUL character';
  const bytes = utf8Length(name);
  if (bytes > MAX_IDENTIFIER_BYTES) return `${bytes} bytes long: PostgreSQL names are at most ${MAX_IDENTIFIER_BYTES} bytes (a longer one would be cut short)`;
  return undefined;
}

/** How messages name a rule: `rule 3`, or `rule "load users"` for an id with spaces. */
export function ruleLabel(id: unknown): string {
  if (id === undefined) return 'the rule without a rule-id';
  if (typeof id !== 'string' && typeof id !== 'number') return 'the rule with an invalid rule-id';
  const s = String(id);
  return typeof id === 'number' || /^[\w.-]+$/.test(s) ? `rule ${s}` : `rule ${JSON.stringify(s)}`;
}

/** "expected …" keeps its form (the parser appends the value it got); anything else is prefixed. */
function labelled(message: string, label: string): string {
  return message.startsWith('expected ') ? `${message} (${label})` : `${label}: ${message}`;
}

export interface RuleIssue {
  /** Below the rule, e.g. `['object-locator', 'column-name']`. */
  path: PropertyKey[];
  message: string;
}

type Issue = RuleIssue;

/** What each data type takes; anything else given is refused rather than dropped. */
function dataTypeIssues(dt: DmsDataType, base: PropertyKey[]): Issue[] {
  const out: Issue[] = [];
  const refuse = (field: 'length' | 'precision' | 'scale', why: string) => out.push({ path: [...base, field], message: why });
  const takesLength = dt.type === 'string' || dt.type === 'wstring' || dt.type === 'bytes';
  if (dt.length !== undefined && !takesLength) refuse('length', `${dt.type} takes no length (only string, wstring and bytes do)`);
  if (dt.length === 0) refuse('length', 'expected a positive length');
  if (dt.length !== undefined && dt.length > 10485760) refuse('length', 'expected a length of at most 10485760 (PostgreSQL\'s varchar limit)');
  if (dt.type === 'numeric') {
    if (dt.precision !== undefined && (dt.precision < 1 || dt.precision > 1000)) refuse('precision', 'expected a precision from 1 to 1000');
    if (dt.scale !== undefined && dt.precision === undefined) refuse('scale', 'a numeric scale needs a precision');
    if (dt.scale !== undefined && dt.precision !== undefined && dt.scale > dt.precision) refuse('scale', 'expected a scale no larger than the precision');
  } else if (dt.type === 'datetime') {
    // DMS's examples give datetime's fractional digits as precision, its reference as scale.
    if (dt.precision !== undefined && dt.scale !== undefined && dt.precision !== dt.scale) {
      refuse('scale', 'give datetime\'s fractional-second digits once, as scale or as precision');
    }
    const digits = dt.scale ?? dt.precision;
    if (digits !== undefined && digits > 6) {
      refuse(dt.scale !== undefined ? 'scale' : 'precision', `not supported: ${digits} fractional-second digits (PostgreSQL timestamps keep 6)`);
    }
  } else {
    if (dt.precision !== undefined) refuse('precision', `${dt.type} takes no precision (only numeric and datetime do)`);
    if (dt.scale !== undefined) refuse('scale', `${dt.type} takes no scale (only numeric and datetime do)`);
  }
  return out;
}

/** What a well-formed transformation rule still gets wrong: fields its action and target do not use or need. */
function transformationIssues(rule: DmsTransformationRule): Issue[] {
  const out: Issue[] = [];
  const action = rule['rule-action'];
  const target = rule['rule-target'];
  const spec = ACTIONS[action];
  const loc = rule['object-locator'];

  if (!spec.targets.includes(target)) {
    const targets = spec.targets.length === 1 ? `rule-target ${spec.targets[0]}` : `rule-target ${spec.targets.join(', ')}`;
    out.push({ path: ['rule-action'], message: `${action} applies to ${targets}, not to a ${target}` });
  }
  for (const field of RULE_FIELDS) {
    const given = rule[field] !== undefined;
    const need = spec.needs[field];
    if (need !== undefined && !given) out.push({ path: [field], message: required(`${action} needs ${need}`) });
    if (need === undefined && given && !spec.may?.includes(field)) {
      out.push({ path: [field], message: `${action} does not use ${field} (remove it: nothing is ignored silently)` });
    }
  }
  for (const field of ['value', 'old-value'] as const) {
    if (rule[field] === '' && spec.needs[field] !== undefined) out.push({ path: [field], message: `expected ${spec.needs[field]}, not an empty string` });
  }
  if (rule.value !== undefined && (action === 'rename' || action === 'add-column')) {
    const problem = identifierProblem(rule.value);
    if (problem) out.push({ path: ['value'], message: problem });
  }

  for (const field of ['table-tablespace-name', 'index-tablespace-name'] as const) {
    if (loc[field] !== undefined) out.push({ path: ['object-locator', field], message: 'not supported: tablespace rules (dbferry uses the target\'s default tablespace)' });
  }
  const column = target === 'column' && action !== 'add-column';
  if (target === 'schema' && loc['table-name'] !== undefined && loc['table-name'] !== '%') {
    out.push({ path: ['object-locator', 'table-name'], message: 'a schema rule applies to the whole schema: expected no table-name (or %)' });
  }
  if (target !== 'schema' && loc['table-name'] === undefined) {
    out.push({ path: ['object-locator', 'table-name'], message: required(`a ${target} rule needs the table it applies to (% is a wildcard)`) });
  }
  if (column && loc['column-name'] === undefined) {
    out.push({ path: ['object-locator', 'column-name'], message: required('the column the rule applies to (% is a wildcard)') });
  }
  if (!column && loc['column-name'] !== undefined) {
    const why = action === 'add-column' ? 'add-column names its new column in value' : `a ${target} rule applies to no column`;
    out.push({ path: ['object-locator', 'column-name'], message: `not used: ${why} (remove it)` });
  }
  if (!column && loc['data-type'] !== undefined) {
    out.push({ path: ['object-locator', 'data-type'], message: 'not used: a data-type filter selects existing columns, for column rules other than add-column (remove it)' });
  }
  if (loc['data-type']) out.push(...dataTypeIssues(loc['data-type'], ['object-locator', 'data-type']));
  if (rule['data-type']) out.push(...dataTypeIssues(rule['data-type'], ['data-type']));

  if (rule.expression !== undefined) {
    const r = parseExpression(rule.expression);
    if (!r.ok) out.push({ path: ['expression'], message: `expression: ${r.message}` });
  }
  const pk = rule['primary-key-def'];
  if (pk) {
    const problem = identifierProblem(pk.name);
    if (problem) out.push({ path: ['primary-key-def', 'name'], message: problem });
    const seen = new Set<string>();
    pk.columns.forEach((c, j) => {
      if (seen.has(c)) out.push({ path: ['primary-key-def', 'columns', j], message: `column ${JSON.stringify(c)} is listed twice` });
      seen.add(c);
    });
  }
  return out;
}

/** Unknown keys get one issue each, under their own path. */
function flatten(issues: readonly z.core.$ZodIssue[]): Issue[] {
  return issues.flatMap((iss) =>
    iss.code === 'unrecognized_keys' ? iss.keys.map((key) => ({ path: [...iss.path, key], message: iss.message })) : [{ path: [...iss.path], message: iss.message }],
  );
}

/**
 * Everything wrong with one transformation rule on its own (no schema needed), with messages
 * naming the rule. Empty for a rule dbferry can apply.
 */
export function transformationRuleIssues(rule: unknown): RuleIssue[] {
  const label = ruleLabel(isRecord(rule) ? rule['rule-id'] : undefined);
  const r = transformationRuleSchema.safeParse(rule);
  const issues = r.success ? transformationIssues(r.data) : flatten(r.error.issues);
  return issues.map((iss) => ({ path: iss.path, message: labelled(iss.message, label) }));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function forward(ctx: z.core.$RefinementCtx, base: PropertyKey[], issues: readonly Issue[]): void {
  for (const iss of issues) ctx.addIssue({ code: 'custom', path: [...base, ...iss.path], message: iss.message });
}

/**
 * Rules are dispatched on `rule-type` by hand: a zod union would report every alternative's
 * failures for one wrong field.
 */
const mappingRules = z.array(z.unknown(), expected('a list of rules', 'a list of rules')).superRefine((rules, ctx) => {
  let selections = 0;
  let selecting = 0;
  let valid = 0;
  const ids = new Map<string, number[]>();
  rules.forEach((rule, i) => {
    const id = isRecord(rule) ? rule['rule-id'] : undefined;
    if (typeof id === 'string' || typeof id === 'number') ids.set(String(id), [...(ids.get(String(id)) ?? []), i]);
  });
  rules.forEach((rule, i) => {
    if (!isRecord(rule)) {
      ctx.addIssue({ code: 'custom', path: [i], message: 'expected a rule (a mapping with rule-type, rule-id, rule-action, object-locator)' });
      return;
    }
    const type = rule['rule-type'];
    const label = ruleLabel(rule['rule-id']);
    if (type === 'table-settings') {
      ctx.addIssue({ code: 'custom', path: [i], message: `not supported yet: table-settings rules (${label}; only selection and transformation rules are)` });
      return;
    }
    if (type === 'transformation') {
      const issues = transformationRuleIssues(rule);
      forward(ctx, [i], issues);
      const id = rule['rule-id'];
      const others = typeof id === 'string' || typeof id === 'number' ? (ids.get(String(id)) ?? []).filter((j) => j !== i) : [];
      if (others.length > 0) {
        const where = others.map((j) => `rules[${j}]`).join(', ');
        ctx.addIssue({ code: 'custom', path: [i, 'rule-id'], message: `${label}: ${where} ${others.length === 1 ? 'has' : 'have'} the same rule-id (each rule needs its own: notes and errors name rules by it)` });
      }
      if (issues.length === 0 && others.length === 0) valid++;
      return;
    }
    if (type !== 'selection') {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'rule-type'],
        message: `${type === undefined ? 'required' : 'expected'} selection or transformation (table-settings rules are not supported yet)`,
      });
      return;
    }
    selections++;
    const r = selectionRuleSchema.safeParse(rule);
    if (!r.success) return forward(ctx, [i], flatten(r.error.issues));
    const loc = r.data['object-locator'];
    if (r.data['rule-action'] === 'explicit') {
      for (const key of ['schema-name', 'table-name'] as const) {
        if (loc[key].includes('%')) {
          ctx.addIssue({ code: 'custom', path: [i, 'object-locator', key], message: 'expected an exact name: an explicit rule selects one table, without % wildcards' });
        }
      }
    }
    valid++;
    if (r.data['rule-action'] !== 'exclude') selecting++;
  });
  // Only judged when every rule is valid: a broken include rule would make this message wrong.
  if (rules.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one selection rule' });
  else if (selecting === 0 && valid === rules.length) {
    ctx.addIssue({
      code: 'custom',
      message:
        selections === 0
          ? 'expected at least one selection rule (transformation rules change only the tables selection rules select)'
          : 'expected at least one selection rule with rule-action include or explicit (exclude rules alone select nothing)',
    });
  }
});

export const tableMappingSchema = strict(
  {
    rules: mappingRules.describe(
      'Selection and transformation rules (table-settings rules are not supported yet); at least one selection rule with rule-action include or explicit.',
    ),
  },
  'an AWS DMS table-mapping document ({"rules": [...]})',
);

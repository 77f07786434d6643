/**
 * Which source tables a plan selects: `schema.table` patterns (DMS-style `%` wildcards) or the
 * selection rules of an AWS DMS table mapping. The workflow carries only the plain plan data;
 * whoever needs to match compiles it here, so nothing compiled has to cross a serialization
 * boundary.
 */
import type { DmsTransformationRule } from './dms-mapping-schema';

/** One part of a pattern: matched exactly when quoted or wildcard-free, else as a `%` glob. */
export type NamePattern = { exact: string } | { glob: string };

export interface TablePattern {
  schema: NamePattern;
  table: NamePattern;
}

export interface DmsObjectLocator {
  'schema-name': string;
  'table-name': string;
  'table-type'?: 'table';
}

export interface DmsSelectionRule {
  'rule-type': 'selection';
  'rule-id'?: string | number;
  'rule-name'?: string | number;
  'rule-action': 'include' | 'exclude' | 'explicit';
  'object-locator': DmsObjectLocator;
  'load-order'?: number;
  filters?: unknown[];
}

/** An AWS DMS table-mapping document: selection rules, and transformation rules (plan/dms-transformations.ts). */
export interface DmsTableMapping {
  rules: (DmsSelectionRule | DmsTransformationRule)[];
}

export interface TableSelectionSpec {
  include: readonly string[];
  exclude: readonly string[];
  mappings?: DmsTableMapping;
}

/** The default selection (`%.%`, no mapping): for a MySQL source, the database its URL names. */
export function selectsByDefault(spec: TableSelectionSpec): boolean {
  return spec.mappings === undefined && spec.include.length === 1 && spec.include[0] === '%.%';
}

export interface TableSelector {
  matches(schema: string, table: string): boolean;
}

export type PatternResult = { ok: true; pattern: TablePattern } | { ok: false; message: string };

const PATTERN_HINT = 'expected schema.table, e.g. "shop.%" (quote a part that contains a dot: "my.schema".orders)';

/**
 * Parses `schema.table`. A part in double quotes is taken literally (`""` is a quote); an
 * unquoted part runs to the next dot and may use `%`.
 */
export function parseTablePattern(text: string): PatternResult {
  const parts: NamePattern[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) return { ok: false, message: `unterminated quote; ${PATTERN_HINT}` };
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i];
        i++;
      }
      if (value === '') return { ok: false, message: `empty quoted name; ${PATTERN_HINT}` };
      parts.push({ exact: value });
    } else {
      const dot = text.indexOf('.', i);
      const value = dot < 0 ? text.slice(i) : text.slice(i, dot);
      if (value === '') return { ok: false, message: `empty name; ${PATTERN_HINT}` };
      if (value.includes('"')) return { ok: false, message: `a quote may only enclose a whole name; ${PATTERN_HINT}` };
      parts.push(value.includes('%') ? { glob: value } : { exact: value });
      i += value.length;
    }
    if (i >= text.length) break;
    if (text[i] !== '.') return { ok: false, message: `unexpected text after a quoted name; ${PATTERN_HINT}` };
    i++;
    if (i >= text.length) return { ok: false, message: `empty table name; ${PATTERN_HINT}` };
  }
  if (parts.length !== 2) {
    return { ok: false, message: parts.length < 2 ? `no schema part; ${PATTERN_HINT}` : `too many dots; ${PATTERN_HINT}` };
  }
  return { ok: true, pattern: { schema: parts[0]!, table: parts[1]! } };
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

type NameMatcher = (name: string) => boolean;

function globMatcher(glob: string): NameMatcher {
  if (glob === '%') return () => true;
  const re = new RegExp(`^${glob.split('%').map(escapeRegExp).join('.*')}$`, 'su');
  return (name) => re.test(name);
}

function nameMatcher(p: NamePattern): NameMatcher {
  if ('exact' in p) {
    const value = p.exact;
    return (name) => name === value;
  }
  return globMatcher(p.glob);
}

type TableMatcher = (schema: string, table: string) => boolean;

function tableMatcher(p: TablePattern): TableMatcher {
  const s = nameMatcher(p.schema);
  const t = nameMatcher(p.table);
  return (schema, table) => s(schema) && t(table);
}

function compilePattern(text: string): TableMatcher {
  const r = parseTablePattern(text);
  if (!r.ok) throw new Error(`table pattern ${JSON.stringify(text)}: ${r.message}`);
  return tableMatcher(r.pattern);
}

/** DMS object locators have no quoting: `%` is the only special character. */
function locatorMatcher(loc: DmsObjectLocator): TableMatcher {
  return locatorMatches(loc['schema-name'], loc['table-name']);
}

/** Whether a table matches a DMS object locator's schema-name and table-name. */
export function locatorMatches(schemaName: string, tableName: string): (schema: string, table: string) => boolean {
  return tableMatcher({
    schema: schemaName.includes('%') ? { glob: schemaName } : { exact: schemaName },
    table: tableName.includes('%') ? { glob: tableName } : { exact: tableName },
  });
}

/** Whether a column matches a DMS column locator's column-name (`%` wildcards). */
export function columnLocatorMatches(columnName: string): (column: string) => boolean {
  return columnName.includes('%') ? globMatcher(columnName) : (column) => column === columnName;
}

function selector(include: TableMatcher[], exclude: TableMatcher[]): TableSelector {
  return {
    matches: (schema, table) => include.some((m) => m(schema, table)) && !exclude.some((m) => m(schema, table)),
  };
}

/** A table is selected when some include (or explicit) rule matches it and no exclude rule does. */
export function compileSelection(tables: TableSelectionSpec): TableSelector {
  if (tables.mappings) {
    const include: TableMatcher[] = [];
    const exclude: TableMatcher[] = [];
    for (const rule of tables.mappings.rules) {
      // Transformation rules change names and columns, not which tables are selected.
      if (rule['rule-type'] !== 'selection') continue;
      (rule['rule-action'] === 'exclude' ? exclude : include).push(locatorMatcher(rule['object-locator']));
    }
    return selector(include, exclude);
  }
  return selector(tables.include.map(compilePattern), tables.exclude.map(compilePattern));
}

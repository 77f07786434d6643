/**
 * DMS transformation rules applied to the neutral schema model: the source's model in, the
 * target's model out, with what changed and which rule did it. Pure: no I/O.
 *
 * How rules combine, as the AWS DMS guide ("Transformation rules and actions") describes them:
 * - An object-locator names SOURCE objects ("schema-name, table-name and expression refer to
 *   objects in the source"), case-sensitively, with `%` as the only wildcard. So rules never see
 *   each other's results, and the outcome does not depend on their order in the document.
 * - DMS applies one transformation rule per object: when several match the same schema, table
 *   or column, the one with the lower rule-id. dbferry does the same for each kind of change
 *   (its name; its type; removing a column; a table's key) and reports each rule that lost as a
 *   warning note. A rule that matches nothing is ignored by DMS; here it gets a warning note.
 * - An added column is named by its rule (`value`) and is not matched by other rules (it has no
 *   source name); define-primary-key lists source column names (or added columns' names).
 *
 * Schema renames move tables. Types and sequences stay in their schema (column types and
 * defaults name them in SQL text), except an identity column's sequence, which is created with
 * its table and so moves with it. A schema that ends up holding nothing is dropped from
 * `schemas`.
 *
 * Definitions are SQL text. Column lists of keys, foreign keys, plain indexes and partition
 * keys are rewritten token by token; a renamed, removed or retyped column anywhere else in SQL
 * text (checks, exclusions, expression and partial indexes, generated columns, schema objects
 * such as views and triggers) makes the rule an error naming that object rather than a wrong
 * definition.
 */
import { identifierProblem, ruleLabel, transformationRuleIssues, type DmsDataType, type DmsTransformationRule } from './dms-mapping-schema';
import { parseExpression, referencedColumns, renderPostgres, type Expr } from './dms-expression';
import { qualifiedKey, type ColumnModel, type ConstraintModel, type IndexModel, type QualifiedName, type SchemaModel, type SequenceModel, type TableModel } from './schema-model';
import { qualifiedTable, quoteIdent } from './sql-names';
import type { DmsTableMapping } from './table-selection';

export type SourceEngine = 'postgres' | 'mysql';

// The mapping's fields live on the schema model itself (sourceName, source, removedColumns…).
export type MappedColumnModel = ColumnModel;
export type RemovedColumn = NonNullable<TableModel['removedColumns']>[number];
export type MappedTableModel = TableModel;
export type MappedSchemaModel = SchemaModel;

export type TransformationNoteKind =
  | 'rename-schema'
  | 'rename-table'
  | 'rename-column'
  | 'remove-column'
  | 'add-column'
  | 'change-data-type'
  | 'define-primary-key'
  | 'define-unique'
  | 'sequence'
  | 'not-applied'
  | 'matched-nothing';

export interface TransformationNote {
  ruleId: string;
  kind: TransformationNoteKind;
  /** `change`: what a rule did; `warning`: a rule, or part of one, that changed nothing. */
  severity: 'change' | 'warning';
  /** The table concerned, by its target names; absent for a note on a rule as a whole. */
  table?: QualifiedName;
  message: string;
}

export interface TransformationError {
  ruleId: string;
  /** The rule in the plan, e.g. `tables.mappings.rules[3].rule-action`. */
  path?: string;
  message: string;
}

export type TransformationResult =
  | { ok: true; model: MappedSchemaModel; changes: TransformationNote[] }
  | { ok: false; errors: TransformationError[]; changes: TransformationNote[] };

// ---------------------------------------------------------------------------------------------
// DMS data types

/**
 * DMS data types on a PostgreSQL target:
 *
 * | DMS                          | PostgreSQL                                              |
 * | ---------------------------- | ------------------------------------------------------- |
 * | string(n), wstring(n)        | varchar(n); without a length: text                      |
 * | clob, nclob                  | text                                                    |
 * | int1, int2                   | smallint (PostgreSQL has no one-byte integer)           |
 * | int4 / int8                  | integer / bigint                                        |
 * | uint1 / uint2 / uint4        | smallint / integer / bigint (the next size up)          |
 * | uint8                        | numeric(20,0)                                           |
 * | numeric(p,s)                 | numeric(p,s); numeric(p); numeric                       |
 * | real4 / real8                | real / double precision                                 |
 * | boolean                      | boolean                                                 |
 * | date / time                  | date / time                                             |
 * | datetime(s)                  | timestamp(s) (without time zone, as DMS's datetime); 6 digits without s |
 * | blob, bytes(n)               | bytea (PostgreSQL keeps no byte length: n is not enforced) |
 *
 * Unsigned types get no `>= 0` check: DMS adds none either.
 */
export function postgresType(dt: DmsDataType): string {
  switch (dt.type) {
    case 'string':
    case 'wstring':
      return dt.length !== undefined ? `varchar(${dt.length})` : 'text';
    case 'clob':
    case 'nclob':
      return 'text';
    case 'int1':
    case 'int2':
    case 'uint1':
      return 'smallint';
    case 'int4':
    case 'uint2':
      return 'integer';
    case 'int8':
    case 'uint4':
      return 'bigint';
    case 'uint8':
      return 'numeric(20,0)';
    case 'numeric':
      if (dt.precision === undefined) return 'numeric';
      return dt.scale !== undefined ? `numeric(${dt.precision},${dt.scale})` : `numeric(${dt.precision})`;
    case 'real4':
      return 'real';
    case 'real8':
      return 'double precision';
    case 'boolean':
      return 'boolean';
    case 'date':
      return 'date';
    case 'time':
      return 'time';
    case 'datetime': {
      const digits = dt.scale ?? dt.precision;
      return digits !== undefined ? `timestamp(${digits})` : 'timestamp';
    }
    case 'blob':
    case 'bytes':
      return 'bytea';
  }
}

const TEXT_TYPE = /^(text|varchar(\(\d+\))?|character varying(\(\d+\))?)$/;
const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

function numbers(args: string | undefined): number[] {
  return args === undefined ? [] : args.split(',').map((a) => Number(a.trim()));
}

/** The DMS type DMS reads a MySQL column as (its COLUMN_TYPE, e.g. `int(10) unsigned`). */
function dmsTypeOfMysql(sourceType: string): DmsDataType | undefined {
  const m = /^([a-z]+)\s*(?:\(([^)]*)\))?(.*)$/i.exec(sourceType.trim());
  if (!m) return undefined;
  const base = m[1]!.toLowerCase();
  const n = numbers(m[2]);
  const unsigned = /\bunsigned\b/i.test(m[3]!);
  const int = (signed: DmsDataType['type'], uns: DmsDataType['type']): DmsDataType => ({ type: unsigned ? uns : signed });
  switch (base) {
    case 'tinyint':
      return int('int1', 'uint1');
    case 'smallint':
    case 'year':
      return base === 'year' ? { type: 'int2' } : int('int2', 'uint2');
    case 'mediumint':
    case 'int':
    case 'integer':
      return int('int4', 'uint4');
    case 'bigint':
      return int('int8', 'uint8');
    case 'decimal':
    case 'numeric':
    case 'dec':
    case 'fixed':
      return { type: 'numeric', precision: n[0] ?? 10, scale: n[1] ?? 0 };
    case 'float':
      return { type: 'real4' };
    case 'double':
    case 'real':
      return { type: 'real8' };
    case 'bit':
      return (n[0] ?? 1) === 1 ? { type: 'boolean' } : { type: 'bytes', length: Math.ceil(n[0]! / 8) };
    case 'char':
    case 'varchar':
      return n[0] !== undefined ? { type: 'wstring', length: n[0] } : { type: 'wstring' };
    case 'tinytext':
      return { type: 'wstring', length: 255 };
    case 'text':
    case 'mediumtext':
    case 'longtext':
      return { type: 'nclob' };
    case 'binary':
    case 'varbinary':
      return n[0] !== undefined ? { type: 'bytes', length: n[0] } : { type: 'bytes' };
    case 'tinyblob':
      return { type: 'bytes', length: 255 };
    case 'blob':
    case 'mediumblob':
    case 'longblob':
    case 'geometry':
    case 'point':
    case 'linestring':
    case 'polygon':
      return { type: 'blob' };
    case 'date':
      return { type: 'date' };
    case 'time':
      return { type: 'time' };
    case 'datetime':
    case 'timestamp':
      return { type: 'datetime', scale: n[0] ?? 0 };
    case 'json':
      return { type: 'clob' };
    case 'enum':
    case 'set':
      return { type: 'wstring' };
    default:
      return undefined;
  }
}

/** The DMS type DMS reads a PostgreSQL column as (its type as `format_type` renders it). */
function dmsTypeOfPostgres(type: string): DmsDataType | undefined {
  const t = type.trim();
  if (t.endsWith('[]')) return { type: 'nclob' };
  const m = /^([a-z ]+?)\s*(?:\(([^)]*)\))?(\s+with(?:out)? time zone)?$/.exec(t);
  if (!m) return undefined;
  const n = numbers(m[2]);
  switch (m[1]) {
    case 'smallint':
      return { type: 'int2' };
    case 'integer':
      return { type: 'int4' };
    case 'bigint':
      return { type: 'int8' };
    case 'numeric':
      return n.length ? { type: 'numeric', precision: n[0]!, scale: n[1] ?? 0 } : { type: 'numeric' };
    case 'real':
      return { type: 'real4' };
    case 'double precision':
      return { type: 'real8' };
    case 'character varying':
    case 'character':
      return n.length ? { type: 'wstring', length: n[0]! } : { type: 'wstring' };
    case 'text':
    case 'json':
    case 'jsonb':
    case 'xml':
      return { type: 'nclob' };
    case 'boolean':
      return { type: 'boolean' };
    case 'bytea':
      return { type: 'blob' };
    case 'date':
      return { type: 'date' };
    case 'time':
      return { type: 'time' };
    case 'timestamp':
      return { type: 'datetime', scale: n[0] ?? 6 };
    case 'uuid':
      return { type: 'string' };
    default:
      return undefined;
  }
}

/**
 * The DMS type of a source column, approximately as DMS's source-type tables give it: what an
 * object-locator's data-type filter is compared with. A column whose type is not covered never
 * matches a data-type filter.
 */
export function dmsTypeOf(column: ColumnModel, engine: SourceEngine): DmsDataType | undefined {
  return engine === 'mysql' && column.sourceType !== undefined ? dmsTypeOfMysql(column.sourceType) : dmsTypeOfPostgres(column.type);
}

function dataTypeMatches(filter: DmsDataType, actual: DmsDataType | undefined): boolean {
  if (!actual || actual.type !== filter.type) return false;
  if (filter.length !== undefined && filter.length !== actual.length) return false;
  if (filter.type === 'datetime') {
    const digits = filter.scale ?? filter.precision;
    return digits === undefined || digits === (actual.scale ?? actual.precision);
  }
  if (filter.precision !== undefined && filter.precision !== actual.precision) return false;
  return filter.scale === undefined || filter.scale === actual.scale;
}

// ---------------------------------------------------------------------------------------------
// SQL text: just enough tokens to find identifiers outside string literals

interface SqlToken {
  kind: 'ident' | 'word' | 'string' | 'number' | 'punct';
  start: number;
  end: number;
  /** ident and word: the name as PostgreSQL reads it (bare words fold to lower case). */
  name: string;
}

function sqlTokens(sql: string): SqlToken[] {
  const out: SqlToken[] = [];
  let i = 0;
  const push = (kind: SqlToken['kind'], start: number, end: number, name = '') => out.push({ kind, start, end, name });
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '"') {
      let name = '';
      i++;
      while (i < sql.length) {
        if (sql[i] === '"') {
          if (sql[i + 1] !== '"') break;
          i++;
        }
        name += sql[i];
        i++;
      }
      i++;
      push('ident', start, Math.min(i, sql.length), name);
      continue;
    }
    if (c === "'" || (/[EeBbXxNn]/.test(c) && sql[i + 1] === "'")) {
      const escapes = c === 'E' || c === 'e';
      i = c === "'" ? i + 1 : i + 2;
      while (i < sql.length) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i++;
      }
      i++;
      push('string', start, Math.min(i, sql.length));
      continue;
    }
    const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
    if (dollar) {
      const close = sql.indexOf(dollar[0], i + dollar[0].length);
      i = close < 0 ? sql.length : close + dollar[0].length;
      push('string', start, i);
      continue;
    }
    const word = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i));
    if (word) {
      i += word[0].length;
      push('word', start, i, word[0].toLowerCase());
      continue;
    }
    const num = /^[0-9][0-9.]*/.exec(sql.slice(i));
    if (num) {
      i += num[0].length;
      push('number', start, i);
      continue;
    }
    i++;
    push('punct', start, i, c);
  }
  return out;
}

const isName = (t: SqlToken | undefined): t is SqlToken => t !== undefined && (t.kind === 'ident' || t.kind === 'word');
const isPunct = (t: SqlToken | undefined, p: string) => t !== undefined && t.kind === 'punct' && t.name === p;
const isWord = (t: SqlToken | undefined, ...w: string[]) => t !== undefined && t.kind === 'word' && w.includes(t.name);

interface Edit {
  start: number;
  end: number;
  text: string;
}

function applyEdits(sql: string, edits: Edit[]): string {
  let out = sql;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** `( name, name … )` starting at tokens[open]: the name tokens' indexes and the closing paren's. */
function simpleList(tokens: SqlToken[], open: number): { names: number[]; close: number } | undefined {
  if (!isPunct(tokens[open], '(')) return undefined;
  const names: number[] = [];
  let i = open + 1;
  for (;;) {
    if (!isName(tokens[i])) return undefined;
    names.push(i);
    if (isPunct(tokens[i + 1], ')')) return { names, close: i + 1 };
    if (!isPunct(tokens[i + 1], ',')) return undefined;
    i += 2;
  }
}

/** A qualified name `a.b` (or `b`) starting at tokens[i]: its names and the index after it. */
function qualifiedAt(tokens: SqlToken[], i: number): { parts: string[]; next: number } | undefined {
  if (!isName(tokens[i])) return undefined;
  if (isPunct(tokens[i + 1], '.') && isName(tokens[i + 2])) return { parts: [tokens[i]!.name, tokens[i + 2]!.name], next: i + 3 };
  return { parts: [tokens[i]!.name], next: i + 1 };
}

type Rewrite = { ok: true; sql: string } | { ok: false; column: string };

interface ColumnChanges {
  /** Source name → target name, for renamed columns. */
  renamed: Map<string, string>;
  /** Columns (source names) no SQL text may mention outside the lists rewritten here. */
  watched: Set<string>;
}

function firstMention(tokens: SqlToken[], from: number, to: number, watched: Set<string>, skip: Set<number>): string | undefined {
  for (let i = from; i < to; i++) {
    const t = tokens[i]!;
    if (!skip.has(i) && isName(t) && watched.has(t.name)) return t.name;
  }
  return undefined;
}

/**
 * Key constraints and partition keys: the name lists after PRIMARY KEY, UNIQUE [NULLS NOT
 * DISTINCT], INCLUDE and RANGE/LIST/HASH are rewritten; a watched column elsewhere is unsafe.
 */
function rewriteKeyLists(sql: string, cols: ColumnChanges): Rewrite {
  const tokens = sqlTokens(sql);
  const edits: Edit[] = [];
  const skip = new Set<number>();
  tokens.forEach((t, i) => {
    if (!isPunct(t, '(') || !isWord(tokens[i - 1], 'key', 'unique', 'distinct', 'include', 'range', 'list', 'hash')) return;
    const list = simpleList(tokens, i);
    if (!list) return;
    for (const n of list.names) {
      skip.add(n);
      const to = cols.renamed.get(tokens[n]!.name);
      if (to !== undefined) edits.push({ start: tokens[n]!.start, end: tokens[n]!.end, text: quoteIdent(to) });
    }
  });
  const column = firstMention(tokens, 0, tokens.length, cols.watched, skip);
  return column !== undefined ? { ok: false, column } : { ok: true, sql: applyEdits(sql, edits) };
}

/** The names in a key constraint's column list (`PRIMARY KEY (a, b)`, `UNIQUE (a)`), when it has the plain form. */
function keyColumns(sql: string): string[] | undefined {
  const tokens = sqlTokens(sql);
  const open = tokens.findIndex((t, i) => isPunct(t, '(') && isWord(tokens[i - 1], 'key', 'unique', 'distinct'));
  const list = open < 0 ? undefined : simpleList(tokens, open);
  return list?.names.map((n) => tokens[n]!.name);
}

interface ForeignKeyShape {
  local: string[];
  referenced: string[];
  /** The REFERENCES table's name tokens (to replace) and its names. */
  table: { from: number; to: number; parts: string[] };
}

function foreignKeyShape(tokens: SqlToken[]): ForeignKeyShape | undefined {
  if (!isWord(tokens[0], 'foreign') || !isWord(tokens[1], 'key')) return undefined;
  const local = simpleList(tokens, 2);
  if (!local || !isWord(tokens[local.close + 1], 'references')) return undefined;
  const q = qualifiedAt(tokens, local.close + 2);
  if (!q) return undefined;
  const referenced = simpleList(tokens, q.next);
  if (!referenced) return undefined;
  return {
    local: local.names.map((n) => tokens[n]!.name),
    referenced: referenced.names.map((n) => tokens[n]!.name),
    table: { from: local.close + 2, to: q.next, parts: q.parts },
  };
}

/** Source column names of a foreign key (`FOREIGN KEY (a) REFERENCES t(b)`), when it has the plain form. */
function foreignKeyColumns(sql: string): { local: string[]; referenced: string[] } | undefined {
  const shape = foreignKeyShape(sqlTokens(sql));
  return shape && { local: shape.local, referenced: shape.referenced };
}

/** A foreign key: its own columns, the referenced table and its columns, and `SET NULL (…)` lists. */
function rewriteForeignKey(sql: string, own: ColumnChanges, parent: ColumnChanges, parentTarget: QualifiedName | undefined): Rewrite {
  const tokens = sqlTokens(sql);
  const shape = foreignKeyShape(tokens);
  const watched = new Set([...own.watched, ...parent.watched]);
  if (!shape) {
    const column = firstMention(tokens, 0, tokens.length, watched, new Set());
    if (column !== undefined) return { ok: false, column };
    return parentTarget ? { ok: false, column: '(the referenced table)' } : { ok: true, sql };
  }
  const edits: Edit[] = [];
  const skip = new Set<number>();
  const rename = (n: number, changes: ColumnChanges) => {
    skip.add(n);
    const to = changes.renamed.get(tokens[n]!.name);
    if (to !== undefined) edits.push({ start: tokens[n]!.start, end: tokens[n]!.end, text: quoteIdent(to) });
  };
  simpleList(tokens, 2)!.names.forEach((n) => rename(n, own));
  for (let i = shape.table.from; i < shape.table.to; i++) skip.add(i);
  if (parentTarget) {
    edits.push({ start: tokens[shape.table.from]!.start, end: tokens[shape.table.to - 1]!.end, text: qualifiedTable(parentTarget.schema, parentTarget.name) });
  }
  simpleList(tokens, shape.table.to)!.names.forEach((n) => rename(n, parent));
  tokens.forEach((t, i) => {
    if (i > shape.table.to && isPunct(t, '(') && isWord(tokens[i - 1], 'null', 'default')) simpleList(tokens, i)?.names.forEach((n) => rename(n, own));
  });
  const column = firstMention(tokens, 0, tokens.length, watched, skip);
  return column !== undefined ? { ok: false, column } : { ok: true, sql: applyEdits(sql, edits) };
}

const ORDER_WORDS = new Set(['asc', 'desc', 'nulls', 'first', 'last']);

/**
 * `CREATE INDEX name ON table USING method (items) [INCLUDE (…)] [WITH …] [WHERE …]`: the
 * table name, plain column items and INCLUDE lists are rewritten; a watched column in an
 * expression item, with an operator class or collation, or in WHERE is unsafe.
 */
function rewriteIndex(sql: string, cols: ColumnChanges, tableTarget: QualifiedName | undefined): Rewrite {
  const tokens = sqlTokens(sql);
  const on = tokens.findIndex((t) => isWord(t, 'on'));
  const tableAt = on >= 0 && isWord(tokens[on + 1], 'only') ? on + 2 : on + 1;
  const q = on >= 0 ? qualifiedAt(tokens, tableAt) : undefined;
  if (!q) {
    const column = firstMention(tokens, 0, tokens.length, cols.watched, new Set());
    if (column !== undefined) return { ok: false, column };
    return tableTarget ? { ok: false, column: '(the indexed table)' } : { ok: true, sql };
  }
  const edits: Edit[] = [];
  const skip = new Set<number>();
  for (let i = 0; i < q.next; i++) skip.add(i);
  if (tableTarget) edits.push({ start: tokens[tableAt]!.start, end: tokens[q.next - 1]!.end, text: qualifiedTable(tableTarget.schema, tableTarget.name) });
  const rename = (n: number) => {
    skip.add(n);
    const to = cols.renamed.get(tokens[n]!.name);
    if (to !== undefined) edits.push({ start: tokens[n]!.start, end: tokens[n]!.end, text: quoteIdent(to) });
  };
  const open = tokens.findIndex((t, i) => i >= q.next && isPunct(t, '('));
  if (open >= 0) {
    // Items split at depth-1 commas; an item is plain when it is a name and ordering words.
    let depth = 0;
    let itemStart = open + 1;
    for (let i = open; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (isPunct(t, '(')) depth++;
      if (isPunct(t, ')')) depth--;
      const endsItem = (depth === 1 && isPunct(t, ',')) || (depth === 0 && isPunct(t, ')'));
      if (endsItem) {
        const item = tokens.slice(itemStart, i);
        if (item.length > 0 && isName(item[0]) && item.slice(1).every((x) => x.kind === 'word' && ORDER_WORDS.has(x.name))) {
          rename(itemStart);
          for (let k = itemStart + 1; k < i; k++) skip.add(k);
        }
        itemStart = i + 1;
      }
      if (depth === 0) break;
    }
  }
  tokens.forEach((t, i) => {
    if (isPunct(t, '(') && isWord(tokens[i - 1], 'include')) simpleList(tokens, i)?.names.forEach(rename);
  });
  const column = firstMention(tokens, 0, tokens.length, cols.watched, skip);
  return column !== undefined ? { ok: false, column } : { ok: true, sql: applyEdits(sql, edits) };
}

/** SQL text that may name a column or table: its quoted form, or (for a lower-case name) the bare word in any case. */
function textMentions(sql: string, name: string): boolean {
  if (sql.includes(quoteIdent(name))) return true;
  if (!/^[a-z_][a-z0-9_$]*$/.test(name)) return false;
  return new RegExp(`(?<![A-Za-z0-9_$"])${name.replace(/\$/g, '\\$')}(?![A-Za-z0-9_$"])`, 'i').test(sql);
}

// ---------------------------------------------------------------------------------------------
// Applying the rules

interface Rule {
  index: number;
  id: string;
  label: string;
  r: DmsTransformationRule;
}

interface WorkColumn {
  /** The source column; absent for an added one. */
  source?: ColumnModel;
  col: MappedColumnModel;
  nameRule?: Rule;
  typeRule?: Rule;
  removedBy?: Rule;
  addedBy?: Rule;
  expression?: Expr;
}

interface KeyDefinition {
  rule: Rule;
  name: string;
  unique: boolean;
  columns: WorkColumn[];
}

interface WorkTable {
  src: TableModel;
  key: string;
  schema: string;
  name: string;
  schemaRule?: Rule;
  tableRule?: Rule;
  keyRule?: Rule;
  columns: WorkColumn[];
  keyDef?: KeyDefinition;
}

function likePattern(pattern: string): (name: string) => boolean {
  if (pattern === '%') return () => true;
  if (!pattern.includes('%')) return (name) => name === pattern;
  const re = new RegExp(`^${pattern.split('%').map((p) => p.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')).join('.*')}$`, 'su');
  return (name) => re.test(name);
}

/** A name after a naming rule; `value`/`old-value` were checked by the mapping schema. */
function renamed(rule: DmsTransformationRule, name: string): string {
  const value = rule.value ?? '';
  const old = rule['old-value'] ?? '';
  switch (rule['rule-action']) {
    case 'rename':
      return value;
    case 'convert-lowercase':
      return name.toLowerCase();
    case 'convert-uppercase':
      return name.toUpperCase();
    case 'add-prefix':
      return value + name;
    case 'remove-prefix':
      return name.startsWith(value) ? name.slice(value.length) : name;
    case 'replace-prefix':
      return name.startsWith(old) ? value + name.slice(old.length) : name;
    case 'add-suffix':
      return name + value;
    case 'remove-suffix':
      return name.endsWith(value) ? name.slice(0, name.length - value.length) : name;
    case 'replace-suffix':
      return name.endsWith(old) ? name.slice(0, name.length - old.length) + value : name;
    default:
      return name;
  }
}

/** DMS's order among rules for one object: the lower rule-id wins; ids that are not numbers after those, in document order. */
function byPrecedence(a: Rule, b: Rule): number {
  const na = Number(a.id);
  const nb = Number(b.id);
  const fa = a.id.trim() !== '' && Number.isFinite(na);
  const fb = b.id.trim() !== '' && Number.isFinite(nb);
  if (fa && fb && na !== nb) return na - nb;
  if (fa !== fb) return fa ? -1 : 1;
  return a.index - b.index;
}

const describeTable = (t: QualifiedName) => `${t.schema}.${t.name}`;

interface PendingNote {
  rule: Rule;
  kind: TransformationNoteKind;
  message: string;
  table?: WorkTable;
}

class Transformation {
  readonly errors: TransformationError[] = [];
  readonly #notes: PendingNote[] = [];
  /** Objects a rule lost to another, by loser and winner: one note each, not one per column. */
  readonly #losses = new Map<string, { rule: Rule; winner: Rule; objects: string[] }>();
  readonly tables: WorkTable[];
  readonly #byKey: Map<string, WorkTable>;
  readonly #model: SchemaModel;
  readonly #engine: SourceEngine;

  constructor(model: SchemaModel, engine: SourceEngine) {
    this.#model = model;
    this.#engine = engine;
    this.tables = model.tables.map((t) => ({
      src: t,
      key: qualifiedKey(t),
      schema: t.schema,
      name: t.name,
      columns: t.columns.map((c) => ({ source: c, col: { ...c } })),
    }));
    this.#byKey = new Map(this.tables.map((t) => [t.key, t]));
  }

  error(rule: Rule | undefined, message: string, field?: string): void {
    this.errors.push({
      ruleId: rule?.id ?? '',
      ...(rule ? { path: `tables.mappings.rules[${rule.index}]${field ? `.${field}` : ''}` } : {}),
      message: rule ? `${rule.label}: ${message}` : message,
    });
  }

  note(rule: Rule, kind: TransformationNoteKind, message: string, table?: WorkTable): void {
    this.#notes.push({ rule, kind, message, ...(table ? { table } : {}) });
  }

  /** Notes name tables by their final target names, whenever they were written. */
  get notes(): TransformationNote[] {
    return this.#notes.map((n) => ({
      ruleId: n.rule.id,
      kind: n.kind,
      severity: n.kind === 'not-applied' || n.kind === 'matched-nothing' ? 'warning' : 'change',
      ...(n.table ? { table: { schema: n.table.schema, name: n.table.name } } : {}),
      message: n.message,
    }));
  }

  table(key: string): WorkTable | undefined {
    return this.#byKey.get(key);
  }

  /** Columns that came from the source (not added by a key redesign or a rule). */
  sourceColumns(t: WorkTable): WorkColumn[] {
    return t.columns.filter((c) => c.source && c.source.added === undefined);
  }

  // -- matching: which objects each rule applies to, and which rule wins each object ---------

  match(rules: Rule[]): void {
    for (const rule of rules) {
      const r = rule.r;
      const loc = r['object-locator'];
      const schemaOk = likePattern(loc['schema-name']);
      const tableOk = likePattern(loc['table-name'] ?? '%');
      const tables = this.tables.filter((t) => schemaOk(t.src.schema) && tableOk(t.src.name));
      const action = r['rule-action'];
      if (r['rule-target'] === 'schema') {
        const schemas = [...new Set(tables.map((t) => t.src.schema))];
        if (schemas.length === 0) this.#nothing(rule, `no schema of the migrated tables matches ${loc['schema-name']}`);
        for (const s of schemas) {
          const inSchema = tables.filter((t) => t.src.schema === s);
          const winner = inSchema[0]!.schemaRule;
          if (winner) this.#lost(rule, winner, `schema ${s}`);
          else inSchema.forEach((t) => (t.schemaRule = rule));
        }
        continue;
      }
      if (tables.length === 0) {
        this.#nothing(rule, `no migrated table matches ${loc['schema-name']}.${loc['table-name']}`);
        continue;
      }
      if (r['rule-target'] === 'table') {
        for (const t of tables) {
          const slot = action === 'define-primary-key' ? 'keyRule' : 'tableRule';
          const winner = t[slot];
          if (winner) this.#lost(rule, winner, `table ${t.key}`);
          else t[slot] = rule;
        }
        continue;
      }
      if (action === 'add-column') {
        tables.forEach((t) => this.#addColumn(rule, t));
        continue;
      }
      const columnOk = likePattern(loc['column-name'] ?? '%');
      const typeFilter = loc['data-type'];
      let matched = 0;
      for (const t of tables) {
        for (const c of this.sourceColumns(t)) {
          if (!columnOk(c.source!.name)) continue;
          if (typeFilter && !dataTypeMatches(typeFilter, dmsTypeOf(c.source!, this.#engine))) continue;
          matched++;
          const slot = action === 'remove-column' ? 'removedBy' : action === 'change-data-type' ? 'typeRule' : 'nameRule';
          const winner = c[slot];
          if (winner) this.#lost(rule, winner, `column ${t.key}.${c.source!.name}`);
          else c[slot] = rule;
        }
      }
      if (matched === 0) {
        const filter = typeFilter ? ` of DMS type ${typeFilter.type}` : '';
        this.#nothing(rule, `no column${filter} of the matched tables matches ${loc['column-name']}`);
      }
    }
    this.#reportLosses();
    // A removed column is not renamed or retyped: say so for the rules that also matched it.
    for (const t of this.tables) {
      for (const c of t.columns) {
        if (!c.removedBy) continue;
        for (const other of [c.nameRule, c.typeRule]) {
          if (other) this.note(other, 'not-applied', `${other.label} does not apply to ${t.key}.${c.source!.name}: ${c.removedBy.label} removes that column`);
        }
        delete c.nameRule;
        delete c.typeRule;
      }
    }
  }

  #nothing(rule: Rule, what: string): void {
    this.note(rule, 'matched-nothing', `${rule.label} (${rule.r['rule-action']}) matches nothing: ${what} (DMS ignores such a rule)`);
  }

  #lost(rule: Rule, winner: Rule, object: string): void {
    const key = `${rule.index} ${winner.index}`;
    const loss = this.#losses.get(key) ?? { rule, winner, objects: [] };
    loss.objects.push(object);
    this.#losses.set(key, loss);
  }

  #reportLosses(): void {
    for (const { rule, winner, objects } of this.#losses.values()) {
      const shown = objects.length > 5 ? `${objects.slice(0, 5).join(', ')} and ${objects.length - 5} more` : objects.join(', ');
      this.note(rule, 'not-applied', `${rule.label} (${rule.r['rule-action']}) does not apply to ${shown}: ${winner.label} (${winner.r['rule-action']}) does, and DMS applies one rule per object, the one with the lower rule-id`);
    }
  }

  #addColumn(rule: Rule, t: WorkTable): void {
    const r = rule.r;
    const dt = r['data-type'];
    if (!dt || r.value === undefined) {
      this.error(rule, 'add-column needs value (the new column\'s name) and data-type');
      return;
    }
    let expression: Expr | undefined;
    if (r.expression !== undefined) {
      const parsed = parseExpression(r.expression);
      if (!parsed.ok) {
        this.error(rule, `expression: ${parsed.message}`, 'expression');
        return;
      }
      expression = parsed.ast;
    }
    const col: MappedColumnModel = { name: r.value, type: postgresType(dt), notNull: false, binaryCopySafe: true, added: { kind: 'expression', ruleId: rule.id, sql: 'NULL' } };
    t.columns.push({ col, addedBy: rule, ...(expression ? { expression } : {}) });
  }

  // -- keys, removals, types -------------------------------------------------------------

  defineKeys(): void {
    for (const t of this.tables) {
      const rule = t.keyRule;
      const def = rule?.r['primary-key-def'];
      if (!rule || !def) continue;
      const where = `table ${t.key}`;
      if (t.src.surrogateKey) {
        this.error(rule, `${where} gets a surrogate key from the plan's keys section; a table cannot have both`, 'primary-key-def');
        continue;
      }
      if (t.src.partitioned || t.src.partitionOf) {
        this.error(rule, `${where} is in a partition tree; redefining keys across partitions is not supported`, 'primary-key-def');
        continue;
      }
      const columns: WorkColumn[] = [];
      for (const name of def.columns) {
        const c = this.sourceColumns(t).find((x) => x.source!.name === name) ?? t.columns.find((x) => x.addedBy && x.col.name === name);
        if (!c) this.error(rule, `${where} has no column ${JSON.stringify(name)} (primary-key-def lists source column names)`, 'primary-key-def.columns');
        else columns.push(c);
      }
      if (columns.length !== def.columns.length) continue;
      t.keyDef = { rule, name: def.name, unique: def.origin === 'unique-index', columns };
    }
    // A foreign key needs a key on the columns it references.
    for (const t of this.tables) {
      if (!t.keyDef || t.keyDef.unique) continue;
      const keys = [t.keyDef.columns.map((c) => c.source?.name ?? c.col.name), ...t.src.uniques.map((u) => keyColumns(u.definition) ?? [])];
      for (const other of this.tables) {
        for (const fk of other.src.foreignKeys) {
          if (!fk.references || qualifiedKey(fk.references) !== t.key) continue;
          const cols = foreignKeyColumns(fk.definition);
          const covered = cols && keys.some((k) => k.length === cols.referenced.length && k.every((c) => cols.referenced.includes(c)));
          if (!covered) {
            this.error(t.keyDef.rule, `foreign key ${fk.name} of ${other.key} references table ${t.key}, which would no longer have a primary key or unique constraint on the columns it references`);
          }
        }
      }
    }
  }

  /** Which definitions of the model read a column, by the source names they use. */
  #users(t: WorkTable, column: string, options: { plainIndexItemsOk: boolean }): string[] {
    const users: string[] = [];
    const watched = { renamed: new Map<string, string>(), watched: new Set([column]) };
    const mentions = (sql: string) => sqlTokens(sql).some((tk) => isName(tk) && tk.name === column);
    for (const u of t.src.uniques) if (mentions(u.definition)) users.push(`unique constraint ${u.name}`);
    for (const x of t.src.exclusions) if (mentions(x.definition)) users.push(`exclusion constraint ${x.name}`);
    for (const k of t.src.checks) if (mentions(k.definition)) users.push(`check constraint ${k.name}`);
    for (const i of t.src.indexes) {
      const plainOnly = options.plainIndexItemsOk && rewriteIndex(i.definition, watched, undefined).ok;
      if (!plainOnly && mentions(i.definition)) users.push(`index ${i.name}`);
    }
    if (t.src.partitionBy && mentions(t.src.partitionBy)) users.push('the partition key');
    for (const c of t.src.columns) {
      if (c.name !== column && c.generated !== undefined && mentions(c.generated)) users.push(`generated column ${c.name}`);
    }
    for (const fk of t.src.foreignKeys) {
      const cols = foreignKeyColumns(fk.definition);
      if (cols ? cols.local.includes(column) : mentions(fk.definition)) users.push(`foreign key ${fk.name}`);
    }
    for (const other of this.tables) {
      for (const fk of other.src.foreignKeys) {
        const parent = fk.references ? this.table(qualifiedKey(fk.references)) : this.referencedTable(fk.definition);
        if (parent !== t && parent !== null) continue;
        const cols = foreignKeyColumns(fk.definition);
        if (cols ? cols.referenced.includes(column) : mentions(fk.definition)) users.push(`foreign key ${fk.name} of ${other.key}`);
      }
      for (const ref of other.src.references ?? []) {
        if (other === t && ref.on.some(([child]) => child === column)) users.push(`the plan's key reference ${ref.name}`);
        if (qualifiedKey(ref.parent) === t.key && ref.on.some(([, parent]) => parent === column)) users.push(`the plan's key reference ${ref.name} of ${other.key}`);
      }
    }
    for (const o of this.#objects()) {
      if (textMentions(o.sql, t.src.name) && textMentions(o.sql, column)) users.push(o.name);
    }
    return users;
  }

  #objects() {
    return [...(this.#model.objects?.pre ?? []), ...(this.#model.objects?.post ?? [])];
  }

  removeColumns(): void {
    for (const t of this.tables) {
      for (const c of t.columns) {
        const rule = c.removedBy;
        if (!rule) continue;
        const name = c.source!.name;
        const where = `column ${t.key}.${name}`;
        const pk = t.src.primaryKey;
        const key = t.keyDef && !t.keyDef.unique ? t.keyDef.columns.map((k) => k.source?.name) : (pk?.columns ?? (pk ? (keyColumns(pk.definition) ?? [name]) : undefined));
        if (key?.includes(name)) {
          this.error(rule, `cannot remove ${where}: it is in the table's primary key`);
          continue;
        }
        if (t.keyDef?.columns.includes(c)) {
          this.error(rule, `cannot remove ${where}: ${t.keyDef.rule.label} puts it in a unique constraint`);
          continue;
        }
        const users = this.#users(t, name, { plainIndexItemsOk: false });
        if (users.length > 0) {
          this.error(rule, `cannot remove ${where}: ${users.join(', ')} use${users.length === 1 ? 's' : ''} it (dbferry does not drop or rewrite those for you)`);
        }
      }
    }
  }

  changeTypes(): void {
    for (const t of this.tables) {
      for (const c of t.columns) {
        const rule = c.typeRule;
        const dt = rule?.r['data-type'];
        if (!rule || !dt) continue;
        const src = c.source!;
        const where = `column ${t.key}.${src.name}`;
        const type = postgresType(dt);
        if (src.generated !== undefined) {
          this.error(rule, `cannot change the type of ${where}: it is a generated column (the target computes it)`);
          continue;
        }
        if (src.identity && !INTEGER_TYPES.has(type)) {
          this.error(rule, `cannot make identity column ${where} ${type}: an identity column is smallint, integer or bigint`);
          continue;
        }
        // Keys are compared across source, target and CDC: a type change can merge or refuse key values.
        const pk = t.src.primaryKey;
        const mentions = (sql: string) => sqlTokens(sql).some((tk) => isName(tk) && tk.name === src.name);
        const inKey = (pk && (pk.columns?.includes(src.name) ?? mentions(pk.definition))) || t.keyDef?.columns.includes(c) || t.src.uniques.some((u) => mentions(u.definition));
        if (inKey) {
          this.error(rule, `cannot change the type of ${where}: it is in a primary key or unique constraint, whose values must stay the same on source and target (rows are matched by them)`);
          continue;
        }
        const users = this.#users(t, src.name, { plainIndexItemsOk: true }).filter((u) => !u.startsWith('unique constraint'));
        if (users.length > 0) {
          this.error(rule, `cannot change the type of ${where}: ${users.join(', ')} use${users.length === 1 ? 's' : ''} it, and dbferry cannot tell whether ${users.length === 1 ? 'it fits' : 'they fit'} the new type`);
          continue;
        }
        if (type === src.type) continue;
        c.col.retypedFrom = src.type;
        c.col.type = type;
        // COPY's binary format is per type: the source's values no longer fit it.
        c.col.binaryCopySafe = false;
        if (c.col.collation !== undefined && !TEXT_TYPE.test(type)) delete c.col.collation;
        const dflt = src.default !== undefined ? `; its default ${src.default} is kept (PostgreSQL must be able to cast it)` : '';
        this.note(rule, 'change-data-type', `column ${src.name}: ${src.type} → ${type}${dflt}`, t);
      }
    }
  }

  // -- names -----------------------------------------------------------------------------

  rename(): void {
    for (const t of this.tables) {
      if (t.schemaRule) t.schema = this.#newName(t.schemaRule, t.src.schema, `schema ${t.src.schema}`);
      if (t.tableRule) t.name = this.#newName(t.tableRule, t.src.name, `table ${t.key}`);
      for (const c of t.columns) {
        if (c.nameRule && c.source) c.col.name = this.#newName(c.nameRule, c.source.name, `column ${t.key}.${c.source.name}`);
      }
    }
    for (const t of this.tables) {
      if (t.schema !== t.src.schema) this.note(t.schemaRule!, 'rename-schema', `schema ${t.src.schema} → ${t.schema}`, t);
      if (t.name !== t.src.name) this.note(t.tableRule!, 'rename-table', `table ${t.src.name} → ${t.name}`, t);
      for (const c of t.columns) {
        if (c.source && c.col.name !== c.source.name) {
          c.col.sourceName = c.source.name;
          this.note(c.nameRule!, 'rename-column', `column ${c.source.name} → ${c.col.name}`, t);
        }
      }
    }
  }

  #newName(rule: Rule, from: string, what: string): string {
    const to = renamed(rule.r, from);
    const problem = to === '' ? 'the name would be empty' : identifierProblem(to);
    if (problem) {
      this.error(rule, `cannot rename ${what} to ${JSON.stringify(to)}: ${problem}`);
      return from;
    }
    return to;
  }

  changesOf(t: WorkTable): ColumnChanges {
    const renamedCols = new Map<string, string>();
    for (const c of t.columns) if (c.source && c.col.name !== c.source.name) renamedCols.set(c.source.name, c.col.name);
    return { renamed: renamedCols, watched: new Set(renamedCols.keys()) };
  }

  target(key: string): QualifiedName | undefined {
    const t = this.table(key);
    return t && { schema: t.schema, name: t.name };
  }

  moved(t: WorkTable): boolean {
    return t.schema !== t.src.schema || t.name !== t.src.name;
  }

  /**
   * The table a foreign key without `references` (a model recorded before 0.3) names after
   * REFERENCES: undefined when it is no migrated table, null when that cannot be told and a
   * table it may name was renamed.
   */
  referencedTable(definition: string): WorkTable | undefined | null {
    const tokens = sqlTokens(definition);
    const at = tokens.findIndex((tk) => isWord(tk, 'references'));
    const q = at < 0 ? undefined : qualifiedAt(tokens, at + 1);
    if (q?.parts.length === 2) return this.table(`${q.parts[0]}.${q.parts[1]}`);
    const changed = (t: WorkTable) => this.moved(t) || this.changesOf(t).renamed.size > 0;
    const candidates = q ? this.tables.filter((t) => t.src.name === q.parts[0]) : this.tables;
    if (q && candidates.length === 1) return candidates[0];
    // Unqualified and ambiguous (or unreadable): harmless unless a table it may name changes.
    return candidates.some(changed) ? null : undefined;
  }

  /** The rule that changed a column's name, or else the table's. */
  ruleFor(t: WorkTable, column?: string): Rule | undefined {
    const c = column === undefined ? undefined : t.columns.find((x) => x.source?.name === column);
    return c?.nameRule ?? t.tableRule ?? t.schemaRule;
  }
}

/** The rewritten definitions of one table: errors name the object that could not be rewritten. */
function rewriteTable(tx: Transformation, t: WorkTable): MappedTableModel {
  const cols = tx.changesOf(t);
  const target = { schema: t.schema, name: t.name };
  const unsafe = (what: string, column: string) => {
    const rule = tx.ruleFor(t, column) ?? tx.ruleFor(t);
    tx.error(rule, `cannot rename column ${column} of ${t.key}: ${what} mentions it in SQL text that dbferry does not rewrite`);
  };
  const keyed = (list: ConstraintModel[], what: string): ConstraintModel[] =>
    list.map((k) => {
      const r = rewriteKeyLists(k.definition, cols);
      if (!r.ok) {
        unsafe(`${what} ${k.name}`, r.column);
        return k;
      }
      return { ...k, definition: r.sql, ...(k.columns ? { columns: k.columns.map((c) => cols.renamed.get(c) ?? c) } : {}) };
    });
  const opaque = (list: ConstraintModel[], what: string): ConstraintModel[] => {
    for (const k of list) {
      const column = sqlTokens(k.definition).find((tk) => isName(tk) && cols.watched.has(tk.name));
      if (column) unsafe(`${what} ${k.name}`, column.name);
    }
    return list;
  };

  const replaced = t.keyDef !== undefined && !t.keyDef.unique;
  let primaryKey = t.src.primaryKey && !replaced ? keyed([t.src.primaryKey], 'primary key')[0] : t.src.primaryKey;
  let uniques = keyed(t.src.uniques, 'unique constraint');
  if (t.keyDef) {
    const names = t.keyDef.columns.map((c) => c.col.name);
    const list = names.map(quoteIdent).join(', ');
    if (t.keyDef.unique) {
      uniques = [...uniques, { name: t.keyDef.name, definition: `UNIQUE (${list})` }];
      tx.note(t.keyDef.rule, 'define-unique', `unique constraint ${t.keyDef.name} (${names.join(', ')})`, t);
    } else {
      const before = primaryKey ? ` (replacing ${primaryKey.name} (${(primaryKey.columns ?? []).join(', ')}))` : '';
      primaryKey = { name: t.keyDef.name, definition: `PRIMARY KEY (${list})`, columns: names };
      for (const c of t.keyDef.columns) c.col.notNull = true;
      tx.note(t.keyDef.rule, 'define-primary-key', `primary key ${t.keyDef.name} (${names.join(', ')})${before}; its columns become NOT NULL`, t);
    }
  }

  const foreignKeys = t.src.foreignKeys.map((fk) => {
    const parent = fk.references ? tx.table(qualifiedKey(fk.references)) : tx.referencedTable(fk.definition);
    if (parent === null) {
      tx.error(tx.ruleFor(t), `cannot rewrite foreign key ${fk.name} of ${t.key}: dbferry cannot tell which table it references`);
      return fk;
    }
    const parentCols = parent ? tx.changesOf(parent) : { renamed: new Map<string, string>(), watched: new Set<string>() };
    const parentTarget = parent && tx.moved(parent) ? tx.target(parent.key) : undefined;
    const r = rewriteForeignKey(fk.definition, cols, parentCols, parentTarget);
    if (!r.ok) {
      if (r.column.startsWith('(')) {
        tx.error(parent && tx.ruleFor(parent), `cannot rewrite foreign key ${fk.name} of ${t.key} for the new name of ${parent!.key}: it does not have the form FOREIGN KEY (…) REFERENCES table(…) that dbferry rewrites`);
      } else {
        const rule = tx.ruleFor(t, r.column) ?? (parent ? tx.ruleFor(parent, r.column) : undefined);
        tx.error(rule, `cannot rename column ${r.column}: foreign key ${fk.name} of ${t.key} mentions it in SQL text that dbferry does not rewrite`);
      }
      return fk;
    }
    return { ...fk, definition: r.sql, ...(fk.references && parent ? { references: { schema: parent.schema, name: parent.name } } : {}) };
  });

  const indexes = t.src.indexes.map((i): IndexModel => {
    const r = rewriteIndex(i.definition, cols, tx.moved(t) ? target : undefined);
    if (!r.ok) {
      if (r.column.startsWith('(')) tx.error(tx.ruleFor(t), `cannot rewrite index ${i.name} of ${t.key} for its table's new name: dbferry cannot find the table in its definition`);
      else unsafe(`index ${i.name}`, r.column);
      return i;
    }
    return { ...i, definition: r.sql };
  });

  let partitionBy = t.src.partitionBy;
  if (partitionBy !== undefined) {
    const r = rewriteKeyLists(partitionBy, cols);
    if (r.ok) partitionBy = r.sql;
    else unsafe('the partition key', r.column);
  }
  for (const c of t.src.columns) {
    const column = c.generated !== undefined ? sqlTokens(c.generated).find((tk) => isName(tk) && cols.watched.has(tk.name)) : undefined;
    if (column) unsafe(`generated column ${c.name}`, column.name);
  }

  const parentTarget = t.src.partitionOf ? tx.target(qualifiedKey(t.src.partitionOf.parent)) : undefined;
  const mapIndexParent = <T extends { parentIndex?: QualifiedName }>(x: T): T =>
    x.parentIndex && parentTarget && t.src.partitionOf && x.parentIndex.schema === t.src.partitionOf.parent.schema
      ? { ...x, parentIndex: { schema: parentTarget.schema, name: x.parentIndex.name } }
      : x;
  const removed = t.columns.filter((c) => c.removedBy);
  for (const c of removed) tx.note(c.removedBy!, 'remove-column', `column ${c.source!.name} removed`, t);

  const out: MappedTableModel = {
    ...t.src,
    schema: t.schema,
    name: t.name,
    columns: t.columns.filter((c) => !c.removedBy).map((c) => c.col),
    uniques: uniques.map(mapIndexParent),
    checks: opaque(t.src.checks, 'check constraint'),
    exclusions: opaque(t.src.exclusions, 'exclusion constraint').map(mapIndexParent),
    foreignKeys,
    indexes: indexes.map(mapIndexParent),
  };
  if (primaryKey) out.primaryKey = mapIndexParent(primaryKey);
  if (partitionBy !== undefined) out.partitionBy = partitionBy;
  if (t.src.partitionOf) out.partitionOf = { ...t.src.partitionOf, parent: parentTarget ?? t.src.partitionOf.parent };
  if (t.src.inherits) out.inherits = t.src.inherits.map((p) => tx.target(qualifiedKey(p)) ?? p);
  if (t.src.references) {
    out.references = t.src.references.map((ref) => {
      const parent = tx.table(qualifiedKey(ref.parent));
      const parentCols = parent ? tx.changesOf(parent).renamed : new Map<string, string>();
      return {
        ...ref,
        parent: parent ? { schema: parent.schema, name: parent.name } : ref.parent,
        on: ref.on.map(([child, p]): [string, string] => [cols.renamed.get(child) ?? child, parentCols.get(p) ?? p]),
      };
    });
  }
  if (tx.moved(t)) out.source = { schema: t.src.schema, name: t.src.name };
  if (removed.length > 0) out.removedColumns = removed.map((c) => ({ name: c.source!.name, ruleId: c.removedBy!.id }));
  return out;
}

/** The add-column expressions, over the target row: `$NAME` is a source column, read by its target name. */
function renderAddedColumns(tx: Transformation, t: WorkTable): void {
  for (const c of t.columns) {
    const rule = c.addedBy;
    if (!rule) continue;
    const problem = identifierProblem(c.col.name);
    if (problem) tx.error(rule, `cannot add column ${JSON.stringify(c.col.name)}: ${problem}`, 'value');
    let sql = 'NULL';
    if (c.expression) {
      let ok = true;
      for (const name of referencedColumns(c.expression)) {
        const src = tx.sourceColumns(t).find((x) => x.source!.name === name);
        if (!src) {
          ok = false;
          const why = /^AR_[HM]_/.test(name) ? 'DMS header and metadata variables are not supported' : `${t.key} has no such source column (expressions name source columns, case-sensitively)`;
          tx.error(rule, `expression reads $${name}: ${why}`, 'expression');
        } else if (src.removedBy) {
          ok = false;
          tx.error(rule, `expression reads $${name}, which ${src.removedBy.label} removes from ${t.key}`, 'expression');
        }
      }
      if (!ok) continue;
      const byName = new Map(tx.sourceColumns(t).map((x) => [x.source!.name, x.col.name]));
      const expr = renderPostgres(c.expression, (name) => quoteIdent(byName.get(name)!));
      // Text types take the value by assignment, which refuses a value too long for varchar(n) rather than cutting it.
      sql = `CAST(${expr} AS ${TEXT_TYPE.test(c.col.type) ? 'text' : c.col.type})`;
    }
    c.col.added = { kind: 'expression', ruleId: rule.id, sql };
    tx.note(rule, 'add-column', `column ${c.col.name} ${c.col.type} added: ${c.expression ? rule.r.expression : 'NULL (no expression)'}`, t);
  }
}

/** Two objects the target would hold under one name. */
function checkCollisions(tx: Transformation, tables: MappedTableModel[], sequences: SequenceModel[]): void {
  const work = new Map(tables.map((m, i) => [m, tx.tables[i]!]));
  const byTable = new Map<string, MappedTableModel>();
  for (const m of tables) {
    const key = qualifiedKey(m);
    const other = byTable.get(key);
    if (other) {
      const t = work.get(m)!;
      const rule = tx.moved(t) ? (t.tableRule ?? t.schemaRule) : (work.get(other)!.tableRule ?? work.get(other)!.schemaRule);
      tx.error(rule, `tables ${describeTable(other.source ?? other)} and ${describeTable(m.source ?? m)} would both become ${key} (DMS does not replicate two tables into one)`);
    }
    byTable.set(key, m);
    const names = new Map<string, MappedColumnModel>();
    for (const c of m.columns) {
      const clash = names.get(c.name);
      if (clash) {
        const t = work.get(m)!;
        const rule = [c, clash].map((x) => t.columns.find((w) => w.col === x)).map((w) => w?.nameRule ?? w?.addedBy).find((r) => r);
        tx.error(rule, `table ${key} would have two columns named ${c.name}`);
      }
      names.set(c.name, c);
    }
  }
  // Tables, sequences and the indexes behind keys share one namespace per schema.
  const relations = new Map<string, { what: string; changed: Rule | undefined }>();
  const claim = (schema: string, name: string, what: string, changed: Rule | undefined) => {
    const key = `${schema}\u0000${name}`;
    const other = relations.get(key);
    if (other && (changed || other.changed)) {
      tx.error(changed ?? other.changed, `${what} and ${other.what} would both be named ${schema}.${name} (tables, sequences and indexes share names within a schema)`);
    }
    if (!other) relations.set(key, { what, changed });
  };
  for (const m of tables) {
    const t = work.get(m)!;
    const moved = tx.moved(t) ? (t.tableRule ?? t.schemaRule) : undefined;
    claim(m.schema, m.name, `table ${qualifiedKey(m)}`, moved);
    const movedSchema = m.schema !== t.src.schema ? t.schemaRule : undefined;
    if (m.primaryKey) claim(m.schema, m.primaryKey.name, `primary key ${m.primaryKey.name} of ${qualifiedKey(m)}`, t.keyDef && !t.keyDef.unique ? t.keyDef.rule : movedSchema);
    for (const u of m.uniques) claim(m.schema, u.name, `unique constraint ${u.name} of ${qualifiedKey(m)}`, t.keyDef?.unique && t.keyDef.name === u.name ? t.keyDef.rule : movedSchema);
    for (const x of m.exclusions) claim(m.schema, x.name, `exclusion constraint ${x.name} of ${qualifiedKey(m)}`, movedSchema);
    for (const i of m.indexes) claim(m.schema, i.name, `index ${i.name} of ${qualifiedKey(m)}`, movedSchema);
  }
  for (const s of sequences) {
    const owner = s.identity && s.ownedBy ? tables.find((m) => m.schema === s.ownedBy!.table.schema && m.name === s.ownedBy!.table.name) : undefined;
    const t = owner && work.get(owner);
    claim(s.schema, s.name, `sequence ${s.schema}.${s.name}`, t && t.schema !== t.src.schema ? t.schemaRule : undefined);
  }
}

/** Partitions carry exactly their parent's columns; inheritance children at least the parent's. */
function checkTrees(tx: Transformation, tables: MappedTableModel[]): void {
  const byKey = new Map(tables.map((m, i) => [qualifiedKey(tx.tables[i]!.src), { m, t: tx.tables[i]! }]));
  const shape = (m: MappedTableModel) => new Map(m.columns.map((c) => [c.name, c.type]));
  const blame = (a: WorkTable, b: WorkTable, column: string): Rule | undefined => {
    for (const t of [a, b]) {
      for (const w of t.columns) {
        if (w.col.name === column || w.source?.name === column) {
          const r = w.nameRule ?? w.typeRule ?? w.removedBy ?? w.addedBy;
          if (r) return r;
        }
      }
    }
    return undefined;
  };
  for (const { m, t } of byKey.values()) {
    const parents = [...(t.src.partitionOf ? [t.src.partitionOf.parent] : []), ...(t.src.inherits ?? [])];
    for (const p of parents) {
      const parent = byKey.get(qualifiedKey(p));
      if (!parent) continue;
      const mine = shape(m);
      const theirs = shape(parent.m);
      const partition = t.src.partitionOf !== undefined && qualifiedKey(t.src.partitionOf.parent) === qualifiedKey(p);
      const missing = [...theirs].filter(([n, type]) => mine.get(n) !== type).map(([n]) => n);
      const extra = partition ? [...mine].filter(([n, type]) => theirs.get(n) !== type).map(([n]) => n) : m.columns.filter((c) => c.inherited && !theirs.has(c.name)).map((c) => c.name);
      const differing = [...new Set([...missing, ...extra])].sort();
      if (differing.length === 0) continue;
      const rule = blame(t, parent.t, differing[0]!);
      const relation = partition ? 'a partition must have exactly its parent\'s columns' : 'an inheritance child has its parents\' columns';
      tx.error(rule, `${qualifiedKey(m)} and its parent ${qualifiedKey(parent.m)} would differ in column${differing.length === 1 ? '' : 's'} ${differing.join(', ')}: ${relation} (make the rule match both)`);
    }
  }
}

/** Renaming or moving a table that schema objects (views, triggers, functions) name in their SQL. */
function checkObjects(tx: Transformation, model: SchemaModel): void {
  const objects = [...(model.objects?.pre ?? []), ...(model.objects?.post ?? [])];
  for (const t of tx.tables) {
    const renamedCols = [...tx.changesOf(t).renamed.keys()];
    if (!tx.moved(t) && renamedCols.length === 0) continue;
    for (const o of objects) {
      if (!textMentions(o.sql, t.src.name)) continue;
      if (tx.moved(t)) {
        tx.error(t.tableRule ?? t.schemaRule, `cannot move table ${t.key} to ${t.schema}.${t.name}: ${o.name} names it in SQL text that dbferry does not rewrite`);
        continue;
      }
      const column = renamedCols.find((c) => textMentions(o.sql, c));
      if (column !== undefined) tx.error(tx.ruleFor(t, column), `cannot rename column ${column} of ${t.key}: ${o.name} may name it in SQL text that dbferry does not rewrite`);
    }
  }
}

/** Identity sequences move with their table; every sequence follows its owner's new names. */
function mapSequences(tx: Transformation, model: SchemaModel): SequenceModel[] {
  const out: SequenceModel[] = [];
  for (const s of model.sequences) {
    const owner = s.ownedBy ? tx.table(qualifiedKey(s.ownedBy.table)) : undefined;
    const column = owner?.columns.find((c) => c.source?.name === s.ownedBy!.column);
    if (owner && column?.removedBy) {
      if (s.identity) continue;
      const { ownedBy: _dropped, ...rest } = s;
      out.push(rest);
      tx.note(column.removedBy, 'sequence', `sequence ${s.schema}.${s.name} is no longer owned by a column (${s.ownedBy!.column} is removed)`, owner);
      continue;
    }
    if (!owner || !column) {
      out.push(s);
      continue;
    }
    const seq: SequenceModel = { ...s, ownedBy: { table: { schema: owner.schema, name: owner.name }, column: column.col.name } };
    if (qualifiedKey(seq.ownedBy!.table) !== qualifiedKey(s.ownedBy!.table) || seq.ownedBy!.column !== s.ownedBy!.column || s.identity) {
      seq.source = { schema: s.schema, name: s.name, ownedBy: s.ownedBy! };
    }
    if (s.identity && owner.schema !== owner.src.schema) {
      seq.schema = owner.schema;
      if (column.col.identitySequence) column.col.identitySequence = { schema: owner.schema, name: s.name };
      tx.note(owner.schemaRule!, 'sequence', `identity sequence ${s.schema}.${s.name} moves with its table to schema ${owner.schema}`, owner);
    }
    out.push(seq);
  }
  return out;
}

/** The schemas still holding something: a renamed schema that kept nothing (not even SQL objects naming it) is left out. */
function mapSchemas(model: SchemaModel, tables: MappedTableModel[], sequences: SequenceModel[]): string[] {
  const used = new Set([...tables.map((t) => t.schema), ...model.types.map((t) => t.schema), ...sequences.map((s) => s.schema)]);
  const objects = [...(model.objects?.pre ?? []), ...(model.objects?.post ?? [])];
  const kept = model.schemas.filter((s) => used.has(s) || objects.some((o) => textMentions(o.sql, s)));
  return [...new Set([...kept, ...tables.map((t) => t.schema)])];
}

/**
 * The target model for a source model and a DMS mapping's rules (selection rules are passed
 * over). Never throws for a rule it cannot apply: each becomes an error naming the rule.
 */
export function applyTransformations(model: SchemaModel, rules: DmsTableMapping['rules'], sourceEngine: SourceEngine): TransformationResult {
  const transformations: Rule[] = [];
  rules.forEach((r, index) => {
    if (r['rule-type'] !== 'transformation') return;
    const id = String(r['rule-id']);
    transformations.push({ index, id, label: ruleLabel(r['rule-id']), r });
  });
  const tx = new Transformation(model, sourceEngine);
  // The plan's schema checked these already; a caller with rules from elsewhere gets the same errors.
  for (const rule of transformations) {
    for (const iss of transformationRuleIssues(rule.r)) {
      const field = iss.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
      tx.errors.push({ ruleId: rule.id, path: `tables.mappings.rules[${rule.index}]${field}`, message: iss.message });
    }
  }
  if (tx.errors.length > 0) return { ok: false, errors: tx.errors, changes: [] };

  tx.match([...transformations].sort(byPrecedence));
  tx.defineKeys();
  tx.removeColumns();
  tx.changeTypes();
  tx.rename();
  const tables = tx.tables.map((t) => rewriteTable(tx, t));
  // Mutates the column objects the tables already hold.
  tx.tables.forEach((t) => renderAddedColumns(tx, t));
  const sequences = mapSequences(tx, model);
  checkObjects(tx, model);
  checkCollisions(tx, tables, sequences);
  checkTrees(tx, tables);
  if (tx.errors.length > 0) return { ok: false, errors: tx.errors, changes: tx.notes };
  return {
    ok: true,
    model: { ...model, schemas: mapSchemas(model, tables, sequences), sequences, tables },
    changes: tx.notes,
  };
}

/**
 * The neutral schema model: what introspection of a source produces and what target DDL is
 * rendered from. Pure data (JSON-serializable), no I/O. Every SQL fragment in it is already
 * rendered for a PostgreSQL target with every identifier quoted and schema-qualified, so it
 * can be pasted into a statement as it is.
 *
 * Numbers that may exceed 2^53 (sequence values, row estimates of huge tables) are strings.
 */

export interface QualifiedName {
  schema: string;
  name: string;
}

export interface ColumnModel {
  name: string;
  /** Target SQL type, rendered and qualified, e.g. `numeric(12,2)`, `"My Schema"."mood"[]`. */
  type: string;
  notNull: boolean;
  /** Default expression as SQL (e.g. `nextval('public.t_id_seq'::regclass)`), absent when none. */
  default?: string;
  /** Identity column: GENERATED ALWAYS / BY DEFAULT AS IDENTITY. */
  identity?: 'always' | 'by-default';
  /** The sequence behind an identity column (its options live in SchemaModel.sequences). */
  identitySequence?: QualifiedName;
  /** Stored generated column expression: never copied, the target computes it. */
  generated?: string;
  /** Collation, rendered (e.g. `"C"` or `pg_catalog."de-x-icu"`), absent for the type's default. */
  collation?: string;
  /** An inheritance child's column that comes from its parents (not declared in its CREATE TABLE). */
  inherited?: boolean;
  /**
   * False when the binary COPY format is unsafe for this column across servers: arrays,
   * composites or records whose binary form embeds type OIDs that differ on the target.
   */
  binaryCopySafe: boolean;
  /**
   * A column of another engine (MySQL/MariaDB): how its values were converted (the value kind
   * of activities/mysql/types.ts, e.g. `boolean`, `time`). The cross-engine checksum reads the
   * converted value in the form the source reads the original.
   */
  conversion?: string;
  /** That column's type on the source, as the source names it (`int(10) unsigned`). */
  sourceType?: string;
  /**
   * A column the source does not have: the target makes its values (key redesign, a mapping's
   * add-column). It never travels from the source and is left out of the source-side checksum.
   */
  added?: AddedColumn;
  /** The column's name on the source, when a table-mapping rule renamed it. */
  sourceName?: string;
  /** The column's target type before a change-data-type rule replaced it. */
  retypedFrom?: string;
}

/** How a target-only column gets its values. */
export type AddedColumn =
  /** The table's new single-column primary key (identity bigint or uuid), set on insert. */
  | { kind: 'surrogate-key' }
  /** The parent's surrogate key, looked up through the natural-key columns (see TableModel.references). */
  | { kind: 'reference'; parent: QualifiedName }
  /** A DMS add-column rule: a PostgreSQL expression over the row (or a constant), computed on the target. */
  | { kind: 'expression'; ruleId: string; sql: string };

/** A key redesign's new foreign key: `column` holds the parent's surrogate key, found by the natural key. */
export interface ReferenceModel {
  /** The added column on this (the child) table. */
  column: string;
  parent: QualifiedName;
  /** The parent's surrogate key column. */
  parentColumn: string;
  /** Natural-key pairs: [child column, parent column]. */
  on: [string, string][];
  /** The foreign key's name on the target. */
  name: string;
  /** What deleting the parent does to the children, as the source's relationship does (no relationship: set null). */
  onDelete: 'cascade' | 'set null';
  /** The index on the child's natural-key columns (finding a new parent's children), absent when its primary key starts with them. */
  naturalIndex?: string;
  /** The index on `column` (a deleted parent's children). */
  columnIndex: string;
}

export interface ConstraintModel {
  name: string;
  /** The body as `pg_get_constraintdef` renders it, e.g. `PRIMARY KEY (id)`, `CHECK ((qty > 0))`. */
  definition: string;
  /** The key's columns in order (primary keys only): large tables are loaded in ranges of it. */
  columns?: string[];
  /** Foreign keys: the table referenced (absent in models recorded by versions before 0.3). */
  references?: QualifiedName;
  /** A partition's key: the index of its parent's key it is attached to (`ALTER INDEX … ATTACH PARTITION`). */
  parentIndex?: QualifiedName;
}

export interface IndexModel {
  name: string;
  /** The full statement as `pg_get_indexdef` renders it: `CREATE [UNIQUE] INDEX name ON schema.table USING …`. */
  definition: string;
  /** A partition's index: the partitioned index of its parent it is attached to. */
  parentIndex?: QualifiedName;
}

export interface TableModel {
  schema: string;
  name: string;
  columns: ColumnModel[];
  primaryKey?: ConstraintModel;
  uniques: ConstraintModel[];
  checks: ConstraintModel[];
  exclusions: ConstraintModel[];
  foreignKeys: ConstraintModel[];
  /** Indexes that do not back a constraint. */
  indexes: IndexModel[];
  /** Planner estimates from the source catalog (reltuples, relation size in bytes), as strings. */
  estimatedRows: string;
  estimatedBytes: string;
  /** A partitioned parent: it has no rows of its own (its partitions are tables of their own). */
  partitioned?: boolean;
  /** A partitioned table's key as `pg_get_partkeydef` renders it, e.g. `RANGE (paid_at)`. */
  partitionBy?: string;
  /** A partition: its parent and its bound (`FOR VALUES FROM (…) TO (…)`, `DEFAULT`). */
  partitionOf?: { parent: QualifiedName; bound: string };
  /**
   * An inheritance child: its parents in order. Its inherited columns are marked `inherited` and
   * its `checks` are only its own: the rest comes from the parents, as with `CREATE TABLE … INHERITS`.
   */
  inherits?: QualifiedName[];
  comment?: string;
  /**
   * Key redesign: the target's primary key is this single added column; the source's key
   * (`primaryKey`, still how rows are found in the source and in CDC) becomes a unique constraint.
   */
  surrogateKey?: { column: string; type: 'bigint' | 'uuid'; primaryKeyName: string; naturalKeyName?: string };
  /** Key redesign: new foreign keys to parents' surrogate keys. */
  references?: ReferenceModel[];
  /** The table's names on the source, when a table-mapping rule changed either. */
  source?: QualifiedName;
  /** Source columns that remove-column rules leave out of the target. */
  removedColumns?: { name: string; ruleId: string }[];
}

export interface SequenceModel {
  schema: string;
  name: string;
  dataType: string;
  start: string;
  increment: string;
  min: string;
  max: string;
  cache: string;
  cycle: boolean;
  /** Source state; lastValue null when the sequence was never used. */
  lastValue: string | null;
  isCalled: boolean;
  /** OWNED BY table.column (serial columns and identity columns). */
  ownedBy?: { table: QualifiedName; column: string };
  /** True for the implicit sequence of an identity column: created with the table, not separately. */
  identity: boolean;
  /** Its names on the source (and its owner's), when a table-mapping rule moved or renamed them. */
  source?: { schema: string; name: string; ownedBy?: { table: QualifiedName; column: string } };
}

export interface TypeModel {
  schema: string;
  name: string;
  kind: 'enum' | 'domain' | 'composite';
  /** The full CREATE statement, e.g. `CREATE TYPE "s"."mood" AS ENUM ('sad', 'ok')`. */
  definition: string;
}

export interface ExtensionModel {
  name: string;
  schema: string;
}

/** A schema object carried as the source's DDL (pg_dump's), e.g. a function, a view, a trigger. */
export interface SqlObject {
  /** pg_dump's word for it: FUNCTION, VIEW, TRIGGER, COMMENT… */
  kind: string;
  /** For messages: e.g. `function sales last_updated()`. */
  name: string;
  sql: string;
}

export interface SchemaObjects {
  /** Before the tables are loaded, in dependency order (functions, views…); some need the tables first. */
  pre: SqlObject[];
  /** After the load and the keys (triggers, rules, policies, row security, materialized views' indexes). */
  post: SqlObject[];
  /** Materialized views populated on the source: refreshed once their tables are loaded. */
  refresh: QualifiedName[];
}

export interface SchemaModel {
  /** Schemas that hold selected tables, types or sequences (never pg_catalog/information_schema). */
  schemas: string[];
  extensions: ExtensionModel[];
  /** In dependency order: a type appears after every type it uses. */
  types: TypeModel[];
  sequences: SequenceModel[];
  tables: TableModel[];
  /** Other schema objects of the migrated schemas (PostgreSQL sources), absent when none are carried. */
  objects?: SchemaObjects;
}

/**
 * The columns whose values come from the source, in model order: not generated (the target
 * computes those) and not added by a redesign or mapping. What COPY carries and checksums read.
 */
export function sourceColumns(t: TableModel): ColumnModel[] {
  return t.columns.filter((c) => c.generated === undefined && c.added === undefined);
}

export function qualifiedKey(t: QualifiedName | { schema: string; name: string }): string {
  return `${t.schema}.${t.name}`;
}

/**
 * The model without one table (the operator took it out of the migration after it was dropped
 * on the source): its foreign keys' referrers lose those keys and its owned sequences go with
 * it, as `DROP TABLE … CASCADE` does on the source.
 */
export function withoutTable(model: SchemaModel, key: string): SchemaModel {
  return {
    ...model,
    sequences: model.sequences.filter((s) => !s.ownedBy || qualifiedKey(s.ownedBy.table) !== key),
    tables: model.tables
      .filter((t) => qualifiedKey(t) !== key)
      .map((t) => ({
        ...t,
        foreignKeys: t.foreignKeys.filter((f) => !f.references || qualifiedKey(f.references) !== key),
        ...(t.references ? { references: t.references.filter((r) => qualifiedKey(r.parent) !== key) } : {}),
      })),
  };
}

/**
 * Each table's descendants (partitions, sub-partitions, inheritance children, transitively), by
 * qualifiedKey: what `SELECT … FROM parent` reads besides the parent's own rows.
 */
export function descendantsOf(model: SchemaModel): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const t of model.tables) {
    const parents = [...(t.partitionOf ? [t.partitionOf.parent] : []), ...(t.inherits ?? [])];
    for (const p of parents) children.set(qualifiedKey(p), [...(children.get(qualifiedKey(p)) ?? []), qualifiedKey(t)]);
  }
  const out = new Map<string, string[]>();
  const walk = (key: string, seen: Set<string>): string[] => {
    for (const c of children.get(key) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      walk(c, seen);
    }
    return [...seen];
  };
  for (const key of children.keys()) out.set(key, walk(key, new Set()).sort());
  return out;
}

/**
 * A table as the source has it: its source names, the source's columns under their source
 * names, without the columns only the target has. The table itself when nothing is mapped
 * (callers may key maps by it).
 */
export function sourceTable(t: TableModel): TableModel {
  if (!t.source && !t.columns.some((c) => c.sourceName !== undefined || c.added !== undefined)) return t;
  const names = new Map(t.columns.map((c) => [c.name, c.sourceName ?? c.name]));
  const rename = (cols: string[]) => cols.map((c) => names.get(c) ?? c);
  return {
    ...t,
    schema: t.source?.schema ?? t.schema,
    name: t.source?.name ?? t.name,
    columns: t.columns.filter((c) => c.added === undefined).map((c) => (c.sourceName !== undefined ? { ...c, name: c.sourceName } : c)),
    ...(t.primaryKey ? { primaryKey: { ...t.primaryKey, ...(t.primaryKey.columns ? { columns: rename(t.primaryKey.columns) } : {}) } } : {}),
  };
}

/** The model as the source has it (see sourceTable). */
export function sourceModel(model: SchemaModel): SchemaModel {
  const names = new Map(model.tables.filter((t) => t.source).map((t) => [qualifiedKey(t), t.source!]));
  const parent = (p: QualifiedName): QualifiedName => names.get(qualifiedKey(p)) ?? p;
  const tables = model.tables.map((t) => {
    const s = sourceTable(t);
    if (names.size === 0 || (!s.partitionOf && !s.inherits)) return s;
    return {
      ...s,
      ...(s.partitionOf ? { partitionOf: { ...s.partitionOf, parent: parent(s.partitionOf.parent) } } : {}),
      ...(s.inherits ? { inherits: s.inherits.map(parent) } : {}),
    };
  });
  return { ...model, tables, sequences: model.sequences.map(sourceSequence) };
}

/** A sequence as the source names it. */
export function sourceSequence(s: SequenceModel): SequenceModel {
  if (!s.source) return s;
  const { source, ...rest } = s;
  return { ...rest, schema: source.schema, name: source.name, ...(source.ownedBy ? { ownedBy: source.ownedBy } : {}) };
}

/**
 * The changes the applier takes: decoded pgoutput row changes, bound to the target table they
 * go to. Pure: no I/O, shared by the compaction (compact.ts) and the applier (apply.ts).
 */
import { UNCHANGED, type ColumnValue, type Tuple } from './tuple';

export interface ApplyTable {
  /** `schema.table`, for messages and stats. */
  key: string;
  /** The target table. */
  schema: string;
  name: string;
  /** Column names in the order of the tuples. */
  columns: string[];
  /** Indexes into `columns`: the replica identity (primary key) columns. Never empty. */
  keyColumns: number[];
  /**
   * Target-only columns (a surrogate key, a new reference): a row moved to a new key (delete +
   * insert) keeps their values, so a parent's surrogate key survives a change of its natural key.
   */
  carried?: string[];
  /**
   * Target foreign keys referencing this table with an action (CASCADE, SET NULL, SET DEFAULT)
   * whose changes the source does not send (MySQL): a delete of this table, or an update of the
   * referenced columns, is applied alone, and the action is carried out on the target.
   */
  foreignKeyActions?: ForeignKeyAction[];
}

export type ReferentialAction = 'cascade' | 'set null' | 'set default';

export interface ForeignKeyAction {
  /** The referencing table, quoted and qualified. */
  child: string;
  /** Its columns, quoted, in the key's order. */
  childColumns: string[];
  /** Indexes into the parent's `columns` of the referenced columns, in the same order. */
  parentColumns: number[];
  onDelete?: ReferentialAction;
  onUpdate?: ReferentialAction;
}

/** The change sets off foreign-key actions the target must perform itself (see ApplyTable). */
export function triggersForeignKeyActions(c: RowChange): boolean {
  const actions = c.table.foreignKeyActions;
  if (!actions) return false;
  if (c.kind === 'delete') return actions.some((a) => a.onDelete);
  if (c.kind !== 'update' || !c.old) return false;
  return actions.some((a) => a.onUpdate && referencedChanged(a, c.old!, c.new));
}

/** The referenced columns' values differ between the old and the new row. */
export function referencedChanged(a: ForeignKeyAction, old: Tuple, now: Tuple): boolean {
  return a.parentColumns.some((i) => {
    const before = old[i];
    const after = now[i];
    if (after === UNCHANGED) return false;
    return before instanceof Buffer && after instanceof Buffer ? !before.equals(after) : before !== after;
  });
}

export interface InsertChange {
  kind: 'insert';
  table: ApplyTable;
  /** Where the source has it (an engine position), for messages. */
  position: string;
  new: Tuple;
}

export interface UpdateChange {
  kind: 'update';
  table: ApplyTable;
  /** Where the source has it (an engine position), for messages. */
  position: string;
  /**
   * pgoutput's old tuple when it sent one: the old key values at keyColumns (other positions
   * null) or the whole old row. It is sent when the key changed, when key columns are unchanged
   * TOAST, or for REPLICA IDENTITY FULL.
   */
  old?: Tuple;
  new: Tuple;
}

export interface DeleteChange {
  kind: 'delete';
  table: ApplyTable;
  /** Where the source has it (an engine position), for messages. */
  position: string;
  /** The key values at keyColumns (other positions may be anything). */
  old: Tuple;
}

export interface TruncateChange {
  kind: 'truncate';
  tables: ApplyTable[];
  /** Where the source has it (an engine position), for messages. */
  position: string;
  restartIdentity: boolean;
}

export type RowChange = InsertChange | UpdateChange | DeleteChange;
export type Change = RowChange | TruncateChange;

/** A key value as text bytes: key columns are never NULL nor unchanged once resolved. */
export type KeyValues = Buffer[];

/** The row an insert or delete is about. */
export function rowKey(table: ApplyTable, tuple: Tuple, what: string): KeyValues {
  return table.keyColumns.map((k) => keyValue(table, k, tuple[k], what));
}

/**
 * The key of the row an update finds, and its key after the update when that differs. A key
 * column left out of `new` (unchanged TOAST) keeps the value `old` gives for it.
 */
export function updateKeys(change: UpdateChange): { key: KeyValues; newKey?: KeyValues } {
  const { table, old } = change;
  const key: Buffer[] = [];
  let newKey: Buffer[] | undefined;
  for (let i = 0; i < table.keyColumns.length; i++) {
    const k = table.keyColumns[i]!;
    const n = change.new[k];
    const o = old?.[k];
    if (o instanceof Buffer) {
      key.push(o);
      const after = n === UNCHANGED ? o : keyValue(table, k, n, 'update');
      if (!newKey && !after.equals(o)) newKey = key.slice(0, i);
      newKey?.push(after);
    } else {
      key.push(keyValue(table, k, n, 'update'));
      newKey?.push(key[i]!);
    }
  }
  return newKey ? { key, newKey } : { key };
}

function keyValue(table: ApplyTable, k: number, v: ColumnValue | undefined, what: string): Buffer {
  if (v instanceof Buffer) return v;
  const state = v === UNCHANGED ? 'unchanged TOAST' : 'NULL';
  throw new Error(`${what} on ${table.key}: key column ${table.columns[k]} is ${state}, so the row cannot be found`);
}

/**
 * A Map key for a row key: latin1 maps bytes one to one, and the length prefixes keep
 * multi-column keys apart (("a,b","c") vs ("a","b,c")).
 */
export function keyString(key: KeyValues): string {
  if (key.length === 1) return key[0]!.toString('latin1');
  let s = '';
  for (const v of key) s += v.length + ':' + v.toString('latin1');
  return s;
}

/** `("id", "Name")=(5, x)` as PostgreSQL words it in its key messages; long values are cut. */
export function describeKey(table: ApplyTable, key: KeyValues): string {
  const names = table.keyColumns.map((k) => quoteName(table.columns[k]!)).join(', ');
  const values = key.map((v) => {
    const s = v.toString('utf8');
    return s.length > 200 ? s.slice(0, 200) + '…' : s;
  });
  return `(${names})=(${values.join(', ')})`;
}

function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : '"' + name.replace(/"/g, '""') + '"';
}

/** Same target table and same tuple layout: their tuples can share a temp table and statements. */
export function sameShape(a: ApplyTable, b: ApplyTable): boolean {
  if (a === b) return true;
  return (
    a.schema === b.schema &&
    a.name === b.name &&
    a.columns.length === b.columns.length &&
    a.columns.every((c, i) => c === b.columns[i]) &&
    a.keyColumns.length === b.keyColumns.length &&
    a.keyColumns.every((c, i) => c === b.keyColumns[i])
  );
}

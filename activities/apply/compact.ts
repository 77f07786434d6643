/**
 * Compaction of one buffer of row changes: per table and key, the one operation that has the
 * same effect on the target as applying the buffer's changes for that key one by one. Pure.
 *
 * Every operation is written so that applying it to a target that already holds its effect
 * changes nothing (replays converge): inserts are upserts, updates and deletes touch the row
 * only if it is there.
 */
import { keyString, rowKey, updateKeys, type ApplyTable, type InsertChange, type KeyValues, type RowChange, type UpdateChange } from './change';
import { UNCHANGED, type Tuple } from './tuple';

export type Op =
  /** Insert the full row, or overwrite every column of the row with its key. */
  | 'upsert'
  /** Set the columns present in `row` (UNCHANGED elsewhere) of the row with its key, if there is one. */
  | 'update'
  /** Delete the row with its key, if there is one. */
  | 'delete';

export interface Entry {
  op: Op;
  /**
   * upsert: the full row. update: the new values, UNCHANGED where the target keeps its own,
   * key columns always present. delete: the key values at keyColumns.
   */
  row: Tuple;
}

/** One table's part of a buffer. */
export class TableChanges {
  /** Net operation per key (see keyString), in the order keys first appeared. */
  readonly entries = new Map<string, Entry>();
  /** The buffer's original changes of this table, in order: the fallback applies them one by one. */
  readonly changes: RowChange[] = [];
  /** Updates compaction knows found no row: they came after a delete of their key in the buffer. */
  missedUpdates = 0;

  constructor(readonly table: ApplyTable) {}

  /**
   * Adds a change. Returns false, adding nothing, for an update that changes the key: the
   * applier applies those alone. Throws on a change no target could apply (NULL key).
   */
  add(change: RowChange): boolean {
    switch (change.kind) {
      case 'insert':
        this.insert(change);
        break;
      case 'update':
        if (!this.update(change)) return false;
        break;
      case 'delete':
        this.entries.set(this.keyOf(change.old, 'delete'), { op: 'delete', row: change.old });
        break;
    }
    this.changes.push(change);
    return true;
  }

  private insert(c: InsertChange): void {
    if (c.new.includes(UNCHANGED)) throw new Error(`insert on ${this.table.key} has an unchanged TOAST column`);
    // Whatever came before, the row ends as this one: an upsert overwrites every column.
    this.entries.set(this.keyOf(c.new, 'insert'), { op: 'upsert', row: c.new });
  }

  private update(c: UpdateChange): boolean {
    let k: string;
    let row = c.new;
    if (c.old) {
      // Only an old tuple can say the key changed, or give key columns left out as unchanged TOAST.
      const { key, newKey } = updateKeys(c);
      if (newKey) return false;
      k = keyString(key);
      row = withKey(this.table, c.new, key);
    } else {
      k = this.keyOf(c.new, 'update');
    }
    const e = this.entries.get(k);
    if (!e) {
      this.entries.set(k, { op: 'update', row });
    } else if (e.op === 'delete') {
      this.missedUpdates++;
    } else {
      // Later values win; an unchanged later value keeps the earlier one (present or UNCHANGED).
      e.row = merge(e.row, row);
    }
    return true;
  }

  /** keyString(rowKey()) without the arrays for the usual one-column key. */
  private keyOf(tuple: Tuple, what: string): string {
    const ks = this.table.keyColumns;
    if (ks.length === 1) {
      const v = tuple[ks[0]!];
      if (v instanceof Buffer) return v.toString('latin1');
    }
    return keyString(rowKey(this.table, tuple, what));
  }
}

function merge(earlier: Tuple, later: Tuple): Tuple {
  const out = later.slice();
  for (let i = 0; i < out.length; i++) if (out[i] === UNCHANGED) out[i] = earlier[i]!;
  return out;
}

/** `tuple` with the key values from old where they are unchanged TOAST (copied only then). */
function withKey(table: ApplyTable, tuple: Tuple, key: KeyValues): Tuple {
  let out = tuple;
  table.keyColumns.forEach((k, i) => {
    if (out[k] === UNCHANGED) {
      if (out === tuple) out = tuple.slice();
      out[k] = key[i]!;
    }
  });
  return out;
}

/** Positions of the columns present in an update row (not UNCHANGED). */
export function presentColumns(row: Tuple): number[] {
  const out: number[] = [];
  for (let i = 0; i < row.length; i++) if (row[i] !== UNCHANGED) out.push(i);
  return out;
}

/** True when the row has no UNCHANGED value: the common case, checked without allocating. */
export function isComplete(row: Tuple): boolean {
  for (let i = 0; i < row.length; i++) if (row[i] === UNCHANGED) return false;
  return true;
}

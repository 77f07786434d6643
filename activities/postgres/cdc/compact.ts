/**
 * Compaction of one buffer of row changes: per table and key, the one operation that has the
 * same effect on the target as applying the buffer's changes for that key one by one. Pure.
 *
 * Every operation is written so that applying it to a target that already holds its effect
 * changes nothing (replays converge): inserts are upserts, updates and deletes touch the row
 * only if it is there.
 */
import { keyString, rowKey, updateKeys, type ApplyTable, type DeleteChange, type InsertChange, type KeyValues, type RowChange, type UpdateChange } from './change';
import { UNCHANGED, type Tuple } from './types';

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
  /** Updates folded into an `update` entry (each of them misses if the row is not there). */
  updates: number;
}

/** One table's part of a buffer. */
export class TableChanges {
  /** Net operation per key, in the order keys first appeared. */
  readonly entries = new Map<string, Entry>();
  /** The buffer's original changes of this table, in order: the fallback applies them one by one. */
  readonly changes: RowChange[] = [];
  /** Updates compaction knows found no row: they came after a delete of their key in the buffer. */
  missedUpdates = 0;

  constructor(readonly table: ApplyTable) {}

  /** Adds a change; key-changing updates are not accepted (the applier applies them alone). */
  add(change: RowChange): void {
    switch (change.kind) {
      case 'insert':
        this.insert(change);
        break;
      case 'update':
        this.update(change);
        break;
      case 'delete':
        this.delete(change);
        break;
    }
    this.changes.push(change);
  }

  private insert(c: InsertChange): void {
    if (c.new.includes(UNCHANGED)) throw new Error(`insert on ${this.table.key} has an unchanged TOAST column`);
    // Whatever came before, the row ends as this one: an upsert overwrites every column.
    this.entries.set(keyString(rowKey(this.table, c.new, 'insert')), { op: 'upsert', row: c.new, updates: 0 });
  }

  private update(c: UpdateChange): void {
    const { key, newKey } = updateKeys(c);
    if (newKey) throw new Error(`update on ${this.table.key} changes the key: apply it alone, not in a buffer`);
    this.merge(c, key);
  }

  /** add() for an update whose key the caller resolved already (updateKeys, no key change). */
  addUpdate(c: UpdateChange, key: KeyValues): void {
    this.merge(c, key);
    this.changes.push(c);
  }

  private merge(c: UpdateChange, key: KeyValues): void {
    const k = keyString(key);
    const e = this.entries.get(k);
    if (!e) {
      this.entries.set(k, { op: 'update', row: withKey(this.table, c.new, key), updates: 1 });
    } else if (e.op === 'delete') {
      this.missedUpdates++;
    } else {
      // Later values win; an unchanged later value keeps the earlier one (present or UNCHANGED).
      e.row = merge(e.row, c.new);
      if (e.op === 'update') e.updates++;
    }
  }

  private delete(c: DeleteChange): void {
    this.entries.set(keyString(rowKey(this.table, c.old, 'delete')), { op: 'delete', row: c.old, updates: 0 });
  }
}

function merge(earlier: Tuple, later: Tuple): Tuple {
  const out = later.slice();
  for (let i = 0; i < out.length; i++) if (out[i] === UNCHANGED) out[i] = earlier[i]!;
  return out;
}

/** `tuple` with the resolved key values at the key columns (copied only when one was UNCHANGED). */
function withKey(table: ApplyTable, tuple: Tuple, key: KeyValues): Tuple {
  let out = tuple;
  table.keyColumns.forEach((k, i) => {
    if (out[k] !== key[i]) {
      if (out === tuple) out = tuple.slice();
      out[k] = key[i]!;
    }
  });
  return out;
}

/** Positions of the columns present in an update row (not UNCHANGED), as a mask key and a list. */
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

/**
 * The statements the applier runs for one target table. Pure text building; every identifier
 * goes through quoteIdent, values never appear in the text (COPY data or $n parameters).
 */
import { createHash } from 'node:crypto';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import type { ApplyTable } from './change';

/** The smallest and largest key of a batch whose key is one integer column. */
export interface KeyRange {
  min: number;
  max: number;
}

/** What a temp table holds: the keys to delete, the rows to update (one per column set), the rows to upsert. */
export type TempKind = 'delete' | 'update' | 'upsert';

export class TableSql {
  /** The qualified target table. */
  readonly target: string;
  /**
   * `ONLY` keeps UPDATE/DELETE/TRUNCATE off inheritance children (their changes come as their
   * own relations); on a partitioned table it would touch nothing, so there it is left out.
   */
  readonly only: string;
  private readonly keySet: Set<number>;
  private readonly memo = new Map<string, string>();

  /**
   * @param partitioned the target is a partitioned table
   * @param integerKey the key is one column of an integer type (int2, int4, int8), so a batch's
   *   key range can be given to the planner (see `KeyRange`)
   * @param types the target's column types, in the order of `table.columns`: part of the temp
   *   tables' names, so a temp table made before the target's column changed type is not reused
   */
  constructor(
    readonly table: ApplyTable,
    readonly partitioned: boolean,
    readonly integerKey = false,
    private readonly types: readonly string[] = [],
  ) {
    this.target = qualifiedTable(table.schema, table.name);
    this.only = partitioned ? '' : 'ONLY ';
    this.keySet = new Set(table.keyColumns);
  }

  get nonKeyColumns(): number[] {
    return this.table.columns.map((_, i) => i).filter((i) => !this.keySet.has(i));
  }

  isKey(position: number): boolean {
    return this.keySet.has(position);
  }

  /**
   * A session-wide name per table and column set: the same shape always gets the same temp
   * table (also from another applier on this connection), different shapes never share one.
   */
  tempTable(kind: TempKind, positions: readonly number[]): string {
    return this.cached(`temp ${kind} ${positions.join(',')}`, () => {
      const shape = JSON.stringify([this.table.schema, this.table.name, kind, positions.map((i) => [this.table.columns[i], this.types[i] ?? ''])]);
      const hash = createHash('sha256').update(shape).digest('hex').slice(0, 24);
      return `pg_temp.${quoteIdent(`dbferry_apply_${hash}`)}`;
    });
  }

  /**
   * Takes the target's column types (and typmods) without its constraints: NOT NULL would refuse
   * the NULLs of columns an update leaves out. IF NOT EXISTS because a rolled-back caller
   * transaction takes the tables it created with it: asking costs less than tracking that.
   * ON COMMIT DELETE ROWS empties them in place at commit, far cheaper than a TRUNCATE in each
   * transaction (which gives the table a new file); only a second use in one transaction needs one.
   */
  createTemp(kind: TempKind, positions: readonly number[]): string {
    return `CREATE TEMP TABLE IF NOT EXISTS ${this.tempTable(kind, positions)} ON COMMIT DELETE ROWS AS SELECT ${this.list(positions)} FROM ${this.target} WITH NO DATA`;
  }

  copyInto(kind: TempKind, positions: readonly number[]): string {
    return `COPY ${this.tempTable(kind, positions)} FROM STDIN`;
  }

  deleteUsing(range?: KeyRange): string {
    const tmp = this.tempTable('delete', this.table.keyColumns);
    return `DELETE FROM ${this.only}${this.target} AS t USING ${tmp} AS s WHERE ${this.keyJoin()}${this.bounds(range)}`;
  }

  /** `positions`: the key columns and the present columns; null when no non-key column is present. */
  updateFrom(positions: readonly number[], range?: KeyRange): string | null {
    const set = positions.filter((i) => !this.keySet.has(i));
    if (set.length === 0) return null;
    const tmp = this.tempTable('update', positions);
    const assignments = set.map((i) => `${this.col(i)} = s.${this.col(i)}`).join(', ');
    return `UPDATE ${this.only}${this.target} AS t SET ${assignments} FROM ${tmp} AS s WHERE ${this.keyJoin()}${this.bounds(range)}`;
  }

  /**
   * Redundant for the result (every key of the batch is in the range), but it lets the planner
   * see how many target rows the batch spans: a dense batch (a bulk UPDATE in key order) then
   * joins one index range scan by hash instead of descending the index once per row.
   */
  private bounds(range: KeyRange | undefined): string {
    if (!range || !this.integerKey) return '';
    return ` AND t.${this.col(this.table.keyColumns[0]!)} BETWEEN ${range.min} AND ${range.max}`;
  }

  upsertFrom(): string {
    const all = this.table.columns.map((_, i) => i);
    const tmp = this.tempTable('upsert', all);
    const select = all.map((i) => `s.${this.col(i)}`).join(', ');
    return `INSERT INTO ${this.target} (${this.list(all)}) OVERRIDING SYSTEM VALUE SELECT ${select} FROM ${tmp} AS s ${this.onConflict()}`;
  }

  /** One row, parameters $1.. = every column in order. */
  insertOne(): string {
    return this.cached('insertOne', () => {
      const all = this.table.columns.map((_, i) => i);
      const params = all.map((_, n) => `$${n + 1}`).join(', ');
      return `INSERT INTO ${this.target} (${this.list(all)}) OVERRIDING SYSTEM VALUE VALUES (${params}) ${this.onConflict()}`;
    });
  }

  /** One row: parameters = the values at `set` (non-key columns), then the key values. */
  updateOne(set: readonly number[]): string {
    return this.cached(`updateOne ${set.join(',')}`, () => {
      const assignments = set.map((i, n) => `${this.col(i)} = $${n + 1}`).join(', ');
      return `UPDATE ${this.only}${this.target} SET ${assignments} WHERE ${this.keyParams(set.length)}`;
    });
  }

  /**
   * A key change in place (the key columns among `present`): parameters = the values at
   * `present`, then the old key values. Where foreign keys act, an in-place update fires their
   * ON UPDATE actions; a delete + insert (moveOne) would fire ON DELETE on the children.
   */
  updateKeyOne(present: readonly number[]): string {
    return this.cached(`updateKeyOne ${present.join(',')}`, () => {
      const assignments = present.map((i, n) => `${this.col(i)} = $${n + 1}`).join(', ');
      return `UPDATE ${this.only}${this.target} SET ${assignments} WHERE ${this.keyParams(present.length)}`;
    });
  }

  /** One row: parameters = the key values. */
  deleteOne(): string {
    return this.cached('deleteOne', () => `DELETE FROM ${this.only}${this.target} WHERE ${this.keyParams(0)}`);
  }

  /**
   * A key change as delete + insert in one statement: the row leaves its old key and comes back
   * under the new one with the columns `present` taken from the parameters and the others
   * (unchanged TOAST) from the deleted row. An UPDATE could not set identity columns GENERATED
   * ALWAYS; INSERT can.
   *
   * Where the new key is already taken, this is a replay and that row is this row's own future:
   * it gets the present columns (later changes fix them where they differ) but keeps its own
   * unchanged ones, which the row under the old key (re-created later, if at all) cannot give.
   * Parameters: the old key values, then the values at `present` (which includes every key column).
   */
  moveOne(present: readonly number[]): string {
    return this.cached(`moveOne ${present.join(',')}`, () => {
      const k = this.table.keyColumns.length;
      const byPosition = new Map(present.map((p, n) => [p, `$${k + n + 1}`]));
      const all = this.table.columns.map((_, i) => i);
      const carried = (this.table.carried ?? []).map(quoteIdent);
      const select = [...all.map((i) => byPosition.get(i) ?? `o.${this.col(i)}`), ...carried.map((c) => `o.${c}`)].join(', ');
      return (
        `WITH o AS (DELETE FROM ${this.only}${this.target} WHERE ${this.keyParams(0)} RETURNING *) ` +
        `INSERT INTO ${this.target} (${[this.list(all), ...carried].join(', ')}) OVERRIDING SYSTEM VALUE SELECT ${select} FROM o ` +
        this.onConflict(present.filter((i) => !this.keySet.has(i)))
      );
    });
  }

  truncateTarget(): string {
    return `${this.only}${this.target}`;
  }

  private onConflict(set: readonly number[] = this.nonKeyColumns): string {
    const keys = this.list(this.table.keyColumns);
    if (set.length === 0) return `ON CONFLICT (${keys}) DO NOTHING`;
    return `ON CONFLICT (${keys}) DO UPDATE SET ${set.map((i) => `${this.col(i)} = EXCLUDED.${this.col(i)}`).join(', ')}`;
  }

  private keyJoin(): string {
    return this.table.keyColumns.map((i) => `t.${this.col(i)} = s.${this.col(i)}`).join(' AND ');
  }

  private keyParams(offset: number): string {
    return this.table.keyColumns.map((i, n) => `${this.col(i)} = $${offset + n + 1}`).join(' AND ');
  }

  private col(i: number): string {
    return quoteIdent(this.table.columns[i]!);
  }

  private list(positions: readonly number[]): string {
    return positions.map((i) => this.col(i)).join(', ');
  }

  private cached(key: string, make: () => string): string {
    let s = this.memo.get(key);
    if (s === undefined) {
      s = make();
      this.memo.set(key, s);
    }
    return s;
  }
}

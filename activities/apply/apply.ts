/**
 * Applies decoded logical-replication changes to the target, inside a transaction the caller
 * opened (after `SET session_replication_role = replica`, so foreign keys and triggers stay
 * quiet). The caller also writes its progress row and commits; this module never commits.
 *
 * Changes are buffered and compacted per table and key (compact.ts), then applied set-based:
 * the rows are COPYed into session temp tables (one per table and column set, reused for the
 * session, emptied by ON COMMIT DELETE ROWS) and merged into the target with one DELETE …
 * USING, one UPDATE … FROM per column set and one INSERT … ON CONFLICT per table. A buffer runs
 * under a savepoint: when the set-based apply fails (a secondary UNIQUE that only the original
 * order satisfies, or a value the target refuses), the failing table's changes are applied
 * again one by one in their original order, which either succeeds or names the change.
 * Truncates and key-changing updates are barriers, applied alone. One buffer is applied while
 * the next one fills.
 *
 * The caller's side of the contract:
 * - an open transaction on `client`, and no other query on it until add()/flush() resolved;
 * - flush() before every COMMIT (it also tells the applier the transaction may end);
 * - after any failure or ROLLBACK, a new ChangeApplier (this one refuses further use after a
 *   failure it saw, and its buffer is lost with a rollback it did not see);
 * - client_encoding UTF8 (node-postgres' default) and values in UTF-8, as pgoutput sends them
 *   from a UTF-8 source.
 *
 *   const applier = new ChangeApplier(client, { endpoint: target.description });
 *   for (const change of changes) await applier.add(change);
 *   await applier.flush();
 *   // caller: write progress, COMMIT
 */
import { isUtf8 } from 'node:buffer';
import { ApplicationFailure } from '@temporalio/common';
import type { Client, QueryResult } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { FailureType, NEEDS_PERSON, type FailureDetails } from '../../plan/failure-types';
import { quoteIdent } from '../../plan/sql-names';
import { classifyPostgresError, HINTS } from '../pg/errors';
import { TableSql, type KeyRange, type TempKind } from './apply-sql';
import { describeKey, referencedChanged, rowKey, sameShape, triggersForeignKeyActions, updateKeys, type ApplyTable, type Change, type KeyValues, type RowChange, type TruncateChange, type UpdateChange } from './change';
import { isComplete, presentColumns, TableChanges } from './compact';
import { CopyTextEncoder } from './copy-text';
import { UNCHANGED, type Tuple } from './tuple';

export type { ApplyTable, Change, DeleteChange, InsertChange, RowChange, TruncateChange, UpdateChange } from './change';

export interface ApplierOptions {
  /** Changes per buffer (before compaction). Default 50,000. */
  maxRows?: number;
  /**
   * Bytes of values per buffer (before compaction). Default 8 MiB: a buffer's temp table rows
   * then mostly fit the default temp_buffers (8 MB) instead of spilling to disk.
   */
  maxBytes?: number;
  /** Names the target in failure messages, e.g. `target postgres/10.0.0.5:5432/shop`. Default `target`. */
  endpoint?: string;
}

export interface ApplyStats {
  /** Changes handed to add(). */
  changes: number;
  /** Buffers applied. */
  batches: number;
  /** Table buffers the set-based apply failed on, applied one by one instead. */
  fallbacks: number;
  /**
   * Updates that found no row on the target (skipped, as a replay expects). Counted per
   * compacted row: several updates of one missing row in one buffer count once.
   */
  missedUpdates: number;
  /** Key-changing updates (each applied alone). */
  keyChanges: number;
  truncates: number;
}

export const DEFAULT_MAX_ROWS = 50_000;
export const DEFAULT_MAX_BYTES = 8 << 20;

const SAVEPOINT = 'dbferry_apply';
const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
/** How often add() lets I/O run while a buffer is in flight, so its statements keep flowing. */
const YIELD_EVERY = 512;

/** One COPY into one temp table. */
interface CopyGroup {
  kind: TempKind;
  positions: number[];
  rows: number;
  data: Buffer[];
  /** The keys' range, when the key is one integer column and the keys are dense in it. */
  range?: KeyRange;
}

/** A table's part of a sealed buffer: the compacted rows encoded, the originals kept for the fallback. */
interface SealedTable {
  changes: TableChanges;
  groups: CopyGroup[];
}

interface Sealed {
  tables: SealedTable[];
  changes: number;
  firstPosition: string;
  lastPosition: string;
}

class Buffered {
  readonly tables = new Map<string, TableChanges>();
  changes = 0;
  bytes = 0;
  firstPosition = '';
  lastPosition = '';
}

/** A failure already tied to the change that caused it: it passes through the fallback unchanged. */
class ChangeFailed extends Error {
  constructor(readonly failure: ApplicationFailure) {
    super(failure.message);
  }
}

/** A change the applier cannot apply whatever the target holds (NULL key, bad encoding). */
class InvalidChange extends Error {}

export class ChangeApplier {
  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly endpoint: string;
  private filling = new Buffered();
  private inflight?: Promise<void>;
  private broken?: Error;
  private sinceYield = 0;
  private readonly sqlByTable = new WeakMap<ApplyTable, TableSql>();
  private readonly sqlByShape = new Map<string, TableSql>();
  /** Temp table → the transaction that last COPYed into it (ON COMMIT DELETE ROWS empties it at its end). */
  private readonly filledIn = new Map<string, string>();
  /** The transaction of the last buffer applied. */
  private lastXid?: string;
  /** flush() was called since the last buffer was sealed: the caller may have committed since. */
  private maybeCommitted = true;
  private readonly counters: ApplyStats = { changes: 0, batches: 0, fallbacks: 0, missedUpdates: 0, keyChanges: 0, truncates: 0 };

  constructor(
    private readonly client: Client,
    opts: ApplierOptions = {},
  ) {
    this.maxRows = Math.max(1, opts.maxRows ?? DEFAULT_MAX_ROWS);
    this.maxBytes = Math.max(1, opts.maxBytes ?? DEFAULT_MAX_BYTES);
    this.endpoint = opts.endpoint ?? 'target';
  }

  get stats(): Readonly<ApplyStats> {
    return { ...this.counters };
  }

  /**
   * Buffers one change; when the buffer is full, starts applying it (one buffer in flight while
   * the next fills). Truncates and key-changing updates flush everything first and are applied
   * alone. Returns a promise only when the caller must wait for it (the buffer before is still
   * being applied, a change applied alone, a turn for I/O), else undefined: a CDC backlog calls
   * this a million times, and a promise per change showed in the worker's profile.
   */
  add(change: Change): Promise<void> | undefined {
    if (this.broken) return Promise.reject(this.broken);
    try {
      this.counters.changes++;
      return this.bufferOrApply(change)?.catch((err: unknown) => {
        throw this.fail(err);
      });
    } catch (err) {
      return Promise.reject(this.fail(err));
    }
  }

  private bufferOrApply(change: Change): Promise<void> | undefined {
    if (change.kind === 'truncate') return this.alone(() => this.truncate(change));
    // In source order, after everything before it, so each action finds the rows the source's
    // did; and alone, so compaction never folds it into a later re-insert.
    if (triggersForeignKeyActions(change)) return this.alone(() => this.withForeignKeysActing(change));
    const tc = this.filling.tables.get(change.table.key);
    // The table's columns changed mid-stream: its buffered tuples have the old layout.
    if (tc && !sameShape(tc.table, change.table)) return this.drain().then(() => this.buffer(change, undefined));
    return this.buffer(change, tc);
  }

  private buffer(change: RowChange, tc: TableChanges | undefined): Promise<void> | undefined {
    if (!tc) {
      tc = new TableChanges(change.table);
      this.filling.tables.set(change.table.key, tc);
    }
    let added: boolean;
    try {
      added = tc.add(change);
    } catch (err) {
      throw this.changeFailure(change, new InvalidChange((err as Error).message));
    }
    if (!added) {
      // A key change: the row's old key may be anywhere in the buffer, and a later change may
      // take it again; applied alone, after everything before it.
      const { key, newKey } = updateKeys(change as UpdateChange);
      return this.alone(() => this.moveRow(change as UpdateChange, key, newKey!));
    }
    const b = this.filling;
    if (b.changes === 0) b.firstPosition = change.position;
    b.lastPosition = change.position;
    b.changes++;
    b.bytes += sizeOf(change);
    if (b.changes >= this.maxRows || b.bytes >= this.maxBytes) return this.dispatch();
    if (this.inflight && ++this.sinceYield >= YIELD_EVERY) {
      // A caller feeding changes from memory never leaves the microtask queue; the buffer in
      // flight needs I/O turns for its next statement to go out.
      this.sinceYield = 0;
      return new Promise<void>((resolve) => setImmediate(resolve));
    }
    return undefined;
  }

  /** Applies `apply` after everything buffered before it. */
  private async alone(apply: () => Promise<void>): Promise<void> {
    await this.drain();
    await apply();
  }

  /**
   * Applies everything buffered; resolves when the target has it (uncommitted: the caller
   * commits). Call it before every COMMIT: the applier takes it as a sign the transaction may
   * end (see `maybeCommitted`).
   */
  async flush(): Promise<void> {
    if (this.broken) throw this.broken;
    try {
      await this.drain();
      this.maybeCommitted = true;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** flush() for the applier's own barriers, which do not end the transaction. */
  private async drain(): Promise<void> {
    if (this.filling.changes > 0) await this.dispatch();
    const p = this.inflight;
    this.inflight = undefined;
    if (p) await p;
  }

  private fail(err: unknown): Error {
    this.broken ??= err instanceof Error ? err : new Error(String(err));
    return this.broken;
  }

  /**
   * Seals the filling buffer and starts applying it. The encoding (the CPU part) runs before
   * waiting for the buffer in flight, so it overlaps the target's work on that one.
   */
  private async dispatch(): Promise<void> {
    const b = this.filling;
    this.filling = new Buffered();
    const sealed = seal(b);
    const sameTransaction = !this.maybeCommitted;
    this.maybeCommitted = false;
    const previous = this.inflight;
    this.inflight = undefined;
    if (previous) await previous;
    const p = this.applySealed(sealed, sameTransaction);
    // Observed by the next dispatch or flush; until then a rejection must not count as unhandled.
    p.catch(() => undefined);
    this.inflight = p;
  }

  /** `sameTransaction`: certainly in the transaction of the buffer before (no flush() since). */
  private async applySealed(b: Sealed, sameTransaction: boolean): Promise<void> {
    for (const t of b.tables) await this.tableSql(t.changes.table);
    const creates = new Set<string>();
    const used = new Set<string>();
    for (const t of b.tables) {
      const sql = this.sqlFor(t.changes.table);
      for (const g of t.groups) {
        creates.add(sql.createTemp(g.kind, g.positions));
        used.add(sql.tempTable(g.kind, g.positions));
      }
    }
    // Temp tables this transaction filled before are emptied here, before the savepoint: a
    // TRUNCATE inside a new savepoint would give the table a new file every time, outside it
    // only the first time in a transaction. (A rollback to the savepoint then empties them too.)
    const emptied = sameTransaction && this.lastXid !== undefined ? [...used].filter((tmp) => this.filledIn.get(tmp) === this.lastXid) : [];
    // Before the savepoint as well: the temp tables, which its rollback must not drop; jit off,
    // because the planner's cost for a big target crosses jit_above_cost and compiling costs
    // more than the join; notices off for the "already exists" of every buffer. The transaction
    // id tells which temp tables still hold rows from an earlier buffer of this transaction.
    const prologue = [
      'SET LOCAL jit = off',
      'SET LOCAL client_min_messages = warning',
      ...creates,
      ...(emptied.length > 0 ? [`TRUNCATE ${emptied.join(', ')}`] : []),
      'SELECT txid_current()::text AS xid',
      `SAVEPOINT ${SAVEPOINT}`,
    ];
    const xid = await this.client.query(prologue.join(';\n')).then(
      (r) => toArray(r).find((x) => x.fields.some((f) => f.name === 'xid'))!.rows[0].xid as string,
      (err) => {
        throw this.batchFailure(err, b, b.tables[0]?.changes.table);
      },
    );
    // Filled earlier in this transaction after a flush() that was no commit: emptied inside the
    // savepoint, at each attempt (a rollback to it brings their rows back).
    const stale = [...used].filter((tmp) => this.filledIn.get(tmp) === xid && !emptied.includes(tmp));
    for (const tmp of used) this.filledIn.set(tmp, xid);
    this.lastXid = xid;

    const oneByOne = new Set<SealedTable>();
    let separately = false;
    for (;;) {
      let missed = 0;
      const set = b.tables.filter((t) => !oneByOne.has(t));
      try {
        for (const t of oneByOne) missed += await this.applyOneByOne(t);
        missed += await this.applySetBased(set, stale, separately);
        this.counters.missedUpdates += missed;
        this.counters.batches++;
        return;
      } catch (err) {
        if (err instanceof ChangeFailed) {
          // Leave the transaction usable (the caller may still want to record the failure).
          await this.client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
          throw err.failure;
        }
        if (!(err instanceof SetFailure)) throw err;
        const { error, table } = err;
        const failure = this.batchFailure(error, b, table?.changes.table);
        // A merge of several tables failed: which one is not known, so again table by table.
        const retry = table === undefined && !separately && set.length > 1;
        if ((!table && !retry) || failure.type === FailureType.Transient) throw failure;
        try {
          await this.client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
        } catch {
          throw failure;
        }
        if (table) {
          oneByOne.add(table);
          this.counters.fallbacks++;
        } else {
          separately = true;
        }
      }
    }
  }

  /**
   * COPYs the tables' rows into their temp tables, then merges them with one multi-statement
   * query (per table: deletes, updates per column set, upserts) ending with the RELEASE.
   * `separately` gives each table its own merge query, so a failure names its table: the retry
   * after a failed merge of several tables. Strictly one query at a time: pg@9 will refuse
   * queued queries.
   */
  private async applySetBased(tables: SealedTable[], stale: string[], separately: boolean): Promise<number> {
    let missed = 0;
    let current: SealedTable | undefined;
    try {
      if (stale.length > 0) await this.client.query(`TRUNCATE ${stale.join(', ')}`);
      let statements: string[] = [];
      let updates: Array<{ index: number; rows: number }> = [];
      let merging: SealedTable[] = [];
      const merge = async (release: boolean) => {
        // Each temp-table row finds its target row through the key's index. The planner, which
        // has no statistics for a just-filled temp table (it guesses hundreds of rows), would
        // otherwise hash the whole target table for a handful of changes: 200 ms per statement
        // on a 100k-row table. Only for these merges: a keyless table's match needs the hash.
        const planned = ['SET LOCAL enable_hashjoin = off', 'SET LOCAL enable_mergejoin = off', ...statements, 'SET LOCAL enable_hashjoin TO DEFAULT', 'SET LOCAL enable_mergejoin TO DEFAULT'];
        if (release) planned.push(`RELEASE SAVEPOINT ${SAVEPOINT}`);
        current = merging.length === 1 ? merging[0] : undefined;
        const results = toArray(await this.client.query(planned.join(';\n')));
        for (const u of updates) missed += u.rows - (results[u.index + 2]?.rowCount ?? u.rows);
        for (const t of merging) missed += t.changes.missedUpdates;
        statements = [];
        updates = [];
        merging = [];
      };
      for (let i = 0; i < tables.length; i++) {
        const t = (current = tables[i]!);
        const sql = this.sqlFor(t.changes.table);
        // Groups come deletes first: they free secondary unique values the upserts may take.
        for (const g of t.groups) {
          await copyIn(this.client, sql.copyInto(g.kind, g.positions), g.data);
          if (g.kind === 'delete') statements.push(sql.deleteUsing(g.range));
          else if (g.kind === 'upsert') statements.push(sql.upsertFrom());
          else {
            updates.push({ index: statements.length, rows: g.rows });
            statements.push(sql.updateFrom(g.positions, g.range)!);
          }
        }
        merging.push(t);
        if (separately) await merge(i === tables.length - 1);
      }
      if (!separately || tables.length === 0) await merge(true);
    } catch (err) {
      throw new SetFailure(err, current);
    }
    return missed;
  }

  /** The fallback: the table's original changes in order, each its own statement. */
  private async applyOneByOne(t: SealedTable): Promise<number> {
    const sql = this.sqlFor(t.changes.table);
    let missed = 0;
    for (const c of t.changes.changes) {
      try {
        if (c.kind === 'insert') {
          await this.client.query(sql.insertOne(), params(c.new, allPositions(c.new)));
        } else if (c.kind === 'delete') {
          await this.client.query(sql.deleteOne(), params(c.old, c.table.keyColumns));
        } else {
          const { key } = updateKeys(c);
          const set = presentColumns(c.new).filter((i) => !sql.isKey(i));
          if (set.length === 0) continue;
          const r = await this.client.query(sql.updateOne(set), [...params(c.new, set), ...key.map(text)]);
          if (r.rowCount === 0) missed++;
        }
      } catch (err) {
        throw new ChangeFailed(this.changeFailure(c, err));
      }
    }
    return missed;
  }

  /**
   * A key-changing update, alone: the row leaves its old key for the new one. Where the old key
   * is gone (a replay that already moved it), the row under the new key gets the new values.
   */
  private async moveRow(c: UpdateChange, key: KeyValues, newKey: KeyValues): Promise<void> {
    const sql = await this.tableSql(c.table);
    try {
      const row: Tuple = c.new.slice();
      c.table.keyColumns.forEach((k, i) => (row[k] = newKey[i]!));
      const present = presentColumns(row);
      const r = await this.client.query(sql.moveOne(present), [...key.map(text), ...params(row, present)]);
      if (r.rowCount === 0) {
        const set = present.filter((i) => !sql.isKey(i));
        const u = set.length > 0 ? await this.client.query(sql.updateOne(set), [...params(row, set), ...newKey.map(text)]) : undefined;
        if (!u || u.rowCount === 0) this.counters.missedUpdates++;
      }
      this.counters.keyChanges++;
    } catch (err) {
      throw this.changeFailure(c, err);
    }
  }

  /**
   * One change that sets off foreign-key actions the source did not send (InnoDB's are not in
   * the binlog). The target's foreign keys act (the session's replica role keeps them off for
   * everything else), and each action is then also carried out explicitly on the rows that
   * reference the old values: the parent may be missing on the target while its children are
   * not (a table loaded before another, CDC replaying the changes in between), and the source
   * acted on the children it had. dbferry's own ON UPDATE trigger leaves rows an action changes
   * alone, as MySQL does.
   */
  private async withForeignKeysActing(c: RowChange): Promise<void> {
    const sql = await this.tableSql(c.table);
    await this.client.query('SET LOCAL session_replication_role = origin');
    try {
      if (c.kind === 'delete') {
        await this.client.query(sql.deleteOne(), params(c.old, c.table.keyColumns));
      } else if (c.kind === 'update') {
        const { key, newKey } = updateKeys(c);
        if (newKey) {
          // In place: the children follow by ON UPDATE (a move would cascade ON DELETE to them).
          const row: Tuple = c.new.slice();
          c.table.keyColumns.forEach((k, i) => (row[k] = newKey[i]!));
          const present = presentColumns(row);
          // A replay may find the new key taken already: then as a move, which resolves that.
          await this.client.query('SAVEPOINT dbferry_key_change');
          const r = await this.client.query(sql.updateKeyOne(present), [...params(row, present), ...key.map(text)]).catch(async (err: unknown) => {
            if ((err as { code?: string }).code !== '23505') throw err;
            await this.client.query('ROLLBACK TO SAVEPOINT dbferry_key_change');
            return { rowCount: 0 };
          });
          await this.client.query('RELEASE SAVEPOINT dbferry_key_change');
          if (r.rowCount === 0) await this.moveRow(c, key, newKey);
          else this.counters.keyChanges++;
        } else {
          const set = presentColumns(c.new).filter((i) => !sql.isKey(i));
          const r = set.length > 0 ? await this.client.query(sql.updateOne(set), [...params(c.new, set), ...key.map(text)]) : undefined;
          if (r && r.rowCount === 0) this.counters.missedUpdates++;
        }
      }
      const old = c.kind === 'insert' ? undefined : c.old;
      for (const a of c.table.foreignKeyActions ?? []) {
        const action = c.kind === 'delete' ? a.onDelete : c.kind === 'update' && c.old && referencedChanged(a, c.old, c.new) ? a.onUpdate : undefined;
        const before = old && a.parentColumns.map((i) => old[i]);
        // MATCH SIMPLE: a key with a NULL references nothing.
        if (!action || !before || before.some((v) => !(v instanceof Buffer))) continue;
        const where = a.childColumns.map((col, i) => `${col} = $${i + 1}`).join(' AND ');
        const n = a.childColumns.length;
        if (action === 'cascade' && c.kind === 'delete') {
          await this.client.query(`DELETE FROM ${a.child} WHERE ${where}`, before.map((v) => text(v as Buffer)));
        } else if (action === 'cascade' && c.kind === 'update') {
          const after = a.parentColumns.map((i) => (c.new[i] === UNCHANGED ? old![i] : c.new[i]));
          const set = a.childColumns.map((col, i) => `${col} = $${n + i + 1}`).join(', ');
          await this.client.query(`UPDATE ${a.child} SET ${set} WHERE ${where}`, [...before.map((v) => text(v as Buffer)), ...after.map((v) => (v instanceof Buffer ? text(v) : null))]);
        } else {
          const value = action === 'set null' ? 'NULL' : 'DEFAULT';
          await this.client.query(`UPDATE ${a.child} SET ${a.childColumns.map((col) => `${col} = ${value}`).join(', ')} WHERE ${where}`, before.map((v) => text(v as Buffer)));
        }
      }
    } catch (err) {
      throw this.changeFailure(c, err);
    } finally {
      await this.client.query('SET LOCAL session_replication_role = replica').catch(() => undefined);
    }
  }

  private async truncate(c: TruncateChange): Promise<void> {
    const targets: string[] = [];
    for (const t of c.tables) targets.push((await this.tableSql(t)).truncateTarget());
    if (targets.length === 0) return;
    try {
      await this.client.query(`TRUNCATE ${targets.join(', ')}${c.restartIdentity ? ' RESTART IDENTITY' : ''}`);
      this.counters.truncates++;
    } catch (err) {
      throw this.failure(err, `truncating ${c.tables.map((t) => t.key).join(', ')} at ${c.position}`, c.tables[0]?.key);
    }
  }

  /** The statements of a table; the first time, asks the target whether it is partitioned. */
  private async tableSql(table: ApplyTable): Promise<TableSql> {
    const known = this.sqlByTable.get(table);
    if (known) return known;
    const shape = JSON.stringify([table.schema, table.name, table.columns, table.keyColumns]);
    let sql = this.sqlByShape.get(shape);
    if (!sql) {
      const r = await this.client
        .query<{ relkind: string; types: Array<string | null> }>(
          `SELECT c.relkind::text AS relkind,
                  ARRAY(SELECT format_type(a.atttypid, a.atttypmod)
                          FROM unnest($3::text[]) WITH ORDINALITY AS k(name, i)
                          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped
                         ORDER BY k.i) AS types
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
          [table.schema, table.name, table.columns],
        )
        .catch((err) => {
          throw this.failure(err, `looking up ${table.key}`, table.key);
        });
      const found = r.rows[0];
      const missing = found ? table.columns.filter((_, i) => found.types[i] === null) : [];
      if (!found || missing.length > 0 || table.keyColumns.length === 0) {
        const why = !found
          ? 'does not exist on the target'
          : missing.length > 0
            ? `has no column ${missing.map(quoteIdent).join(', ')} on the target`
            : 'has no key columns, so its updates and deletes cannot find their rows';
        throw ApplicationFailure.create({
          type: found && missing.length === 0 ? FailureType.Unsupported : FailureType.DatabaseError,
          nonRetryable: true,
          message: `${this.endpoint}: table ${table.key} ${why}: its changes cannot be applied`,
          details: [{ endpoint: this.endpoint, table: table.key } satisfies FailureDetails],
        });
      }
      const types = found.types as string[];
      const integerKey = table.keyColumns.length === 1 && INTEGER_TYPES.has(types[table.keyColumns[0]!]!);
      sql = new TableSql(table, found.relkind === 'p', integerKey, types);
      this.sqlByShape.set(shape, sql);
    }
    this.sqlByTable.set(table, sql);
    return sql;
  }

  /** After tableSql() resolved for the table. */
  private sqlFor(table: ApplyTable): TableSql {
    const sql = this.sqlByTable.get(table);
    if (!sql) throw new Error(`internal: no statements prepared for ${table.key}`);
    return sql;
  }

  private changeFailure(c: RowChange, err: unknown): ApplicationFailure {
    let key: KeyValues | undefined;
    try {
      key = c.kind === 'update' ? updateKeys(c).key : rowKey(c.table, c.kind === 'insert' ? c.new : c.old, c.kind);
    } catch {
      // The key itself is what is wrong; the message says so.
    }
    const which = key ? ` of key ${describeKey(c.table, key)}` : '';
    return this.failure(err, `applying the ${c.kind}${which} to ${c.table.key} at ${c.position}`, c.table.key);
  }

  private batchFailure(err: unknown, b: Sealed, table: ApplyTable | undefined): ApplicationFailure {
    const where = table ? ` to ${table.key}` : '';
    return this.failure(err, `applying ${b.changes} changes${where} (${b.firstPosition} to ${b.lastPosition})`, table?.key);
  }

  private failure(err: unknown, doing: string, table: string | undefined): ApplicationFailure {
    if (err instanceof ApplicationFailure) return err;
    const e = err as { code?: string; message?: string; detail?: string };
    const raw = e?.message ?? String(err);
    const type = err instanceof InvalidChange ? FailureType.DataError : classifyPostgresError(e?.code, raw, 'target');
    const detail = e?.detail ? ` (${e.detail})` : '';
    const details: FailureDetails = { endpoint: this.endpoint, table, code: e?.code, hint: HINTS[type] };
    return ApplicationFailure.create({
      type,
      message: `${this.endpoint}: ${doing}: ${raw}${detail}`,
      nonRetryable: NEEDS_PERSON.includes(type),
      details: [details],
      cause: err instanceof Error ? err : undefined,
    });
  }
}

/** The set-based apply failed: the first failing statement's error and the table it was for. */
class SetFailure extends Error {
  constructor(
    readonly error: unknown,
    readonly table: SealedTable | undefined,
  ) {
    super('set-based apply failed');
  }
}

/** Compacted rows → COPY payloads, grouped by temp table. */
function seal(b: Buffered): Sealed {
  const tables: SealedTable[] = [];
  for (const tc of b.tables.values()) {
    if (tc.changes.length === 0) continue;
    const { table } = tc;
    const all = table.columns.map((_, i) => i);
    const keySet = new Set(table.keyColumns);
    const oneKey = table.keyColumns.length === 1;
    const groups = new Map<string, { kind: TempKind; positions: number[]; enc: CopyTextEncoder; range?: RangeTracker }>();
    const group = (kind: TempKind, positions: number[], id: string) => {
      let g = groups.get(id);
      if (!g) {
        g = { kind, positions, enc: new CopyTextEncoder(), range: oneKey && kind !== 'upsert' ? new RangeTracker() : undefined };
        groups.set(id, g);
      }
      return g;
    };
    // With one key column the entries' map key is the key's text (see keyString).
    for (const [key, e] of tc.entries) {
      let g;
      let positions = all;
      if (e.op === 'delete') {
        positions = table.keyColumns;
        g = group('delete', positions, 'd');
      } else if (e.op === 'upsert') {
        g = group('upsert', all, 'i');
      } else if (isComplete(e.row)) {
        if (all.length === keySet.size) continue;
        g = group('update', all, 'u');
      } else {
        positions = presentColumns(e.row);
        // Nothing but the key present: the update changes nothing the target does not have.
        if (!positions.some((i) => !keySet.has(i))) continue;
        g = group('update', positions, 'u' + positions.join(','));
      }
      g.enc.writeRow(e.row, positions);
      g.range?.add(key);
    }
    const sealed: CopyGroup[] = [...groups.values()]
      .sort((x, y) => RANK[x.kind] - RANK[y.kind])
      .map(({ kind, positions, enc, range }) => ({ kind, positions, rows: enc.rows, data: enc.finish(), range: range?.dense() }));
    tables.push({ changes: tc, groups: sealed });
  }
  return { tables, changes: b.changes, firstPosition: b.firstPosition, lastPosition: b.lastPosition };
}

/** Below this many rows a batch is not worth a range: the per-row index lookups are few anyway. */
const MIN_RANGE_ROWS = 100;
/** Canonical integer text, as PostgreSQL prints int2/int4/int8. */
const INTEGER_TEXT = /^-?[0-9]{1,16}$/;

/** Min and max of keys that are integers (as text), if every key is one. */
class RangeTracker {
  private min = Infinity;
  private max = -Infinity;
  private rows = 0;
  private ok = true;

  add(key: string): void {
    if (!this.ok) return;
    const v = INTEGER_TEXT.test(key) ? Number(key) : NaN;
    if (!Number.isSafeInteger(v)) {
      this.ok = false;
      return;
    }
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    this.rows++;
  }

  /** The range when the keys fill at least half of it: an index range scan then reads few extra rows. */
  dense(): KeyRange | undefined {
    if (!this.ok || this.rows < MIN_RANGE_ROWS || this.max - this.min + 1 > 2 * this.rows) return undefined;
    return { min: this.min, max: this.max };
  }
}

const RANK: Record<TempKind, number> = { delete: 0, update: 1, upsert: 2 };

/**
 * COPY FROM STDIN of ready-made chunks. Each chunk is written only after the previous one was
 * handed to the socket: pg-copy-streams, given several at once, would go on writing them after
 * a failed COPY, on a connection it has already let go of (and throw).
 */
function copyIn(client: Client, sql: string, chunks: Buffer[]): Promise<void> {
  const stream = client.query(copyFrom(sql));
  return new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', () => resolve());
    let i = 0;
    const next = (err?: Error | null): void => {
      if (err) return;
      if (i < chunks.length) stream.write(chunks[i++]!, next);
      else stream.end();
    };
    next();
  });
}

function toArray(r: QueryResult | QueryResult[]): QueryResult[] {
  return Array.isArray(r) ? r : [r];
}

function allPositions(t: Tuple): number[] {
  return t.map((_, i) => i);
}

/**
 * Values as text parameters. pg sends a Buffer as a binary parameter, which the target would
 * read as the type's binary form, so they go as strings, after checking they are UTF-8 (a
 * replacement character would silently change the value where COPY refuses it).
 */
function params(t: Tuple, positions: readonly number[]): Array<string | null> {
  return positions.map((i) => {
    const v = t[i];
    if (v === null || v === undefined) return null;
    if (v === UNCHANGED) throw new InvalidChange(`column ${i + 1} is unchanged TOAST where a value is needed`);
    return text(v);
  });
}

function text(v: Buffer): string {
  if (!isUtf8(v)) throw new InvalidChange('a value is not valid UTF-8');
  return v.toString('utf8');
}

/** Approximate memory of a buffered change: its values plus the objects around them. */
function sizeOf(c: RowChange): number {
  const t = c.kind === 'delete' ? c.old : c.new;
  let n = 64 + 8 * t.length;
  for (const v of t) if (v instanceof Buffer) n += v.length;
  if (c.kind === 'update' && c.old) for (const v of c.old) if (v instanceof Buffer) n += v.length;
  return n;
}

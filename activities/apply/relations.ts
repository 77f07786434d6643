import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import type { SourceRelation, SourceRelationColumn } from '../engine';
import type { ApplyTable, ForeignKeyAction, ReferentialAction } from './change';

interface TargetColumn {
  name: string;
  type: string;
  notNull: boolean;
  hasDefault: boolean;
  generated: boolean;
}

export interface SchemaChange {
  table: string;
  difference: string;
}

/**
 * Keeps what each relation id of the stream means on the target. A relation event (sent before
 * a table's first change and again after its schema changed; PostgreSQL does not replicate DDL,
 * its relation messages are how a change shows) is compared with the target's columns. An added nullable column is added to the target (with the
 * source's default when it is a constant the source stored for existing rows); any other
 * difference stops the applier with the table and the difference, for the operator.
 */
export class RelationTracker {
  readonly #relations = new Map<number, ApplyTable | null>();
  readonly #targetColumns = new Map<string, TargetColumn[]>();

  constructor(
    private readonly target: Client,
    private readonly tables: ReadonlyMap<string, TableModel>,
    /** The source does not send the changes its foreign keys' actions make (MySQL): find the target's. */
    private readonly foreignKeyActions = false,
  ) {}

  /** The table a change belongs to; null when it is not one this migration applies. */
  table(relationId: number): ApplyTable | null {
    const t = this.#relations.get(relationId);
    if (t === undefined) throw new Error(`the change stream sent a change for relation ${relationId} before describing it`);
    return t;
  }

  /**
   * Learns a relation message. `beforeChange` runs before the new shape takes effect (the
   * caller applies what it buffered under the old shape first); `altering` when the target's
   * table is about to change too (ALTER TABLE). Returns the columns added.
   */
  async learn(m: SourceRelation, beforeChange: (altering: boolean) => Promise<void>): Promise<string[]> {
    const key = qualifiedKey({ schema: m.schema, name: m.name });
    const model = this.tables.get(key);
    if (!model) {
      this.#relations.set(m.id, null);
      return [];
    }
    const previous = this.#relations.get(m.id);
    const target = await this.#columnsOnTarget(model);
    const byName = new Map(target.map((c) => [c.name, c]));
    const differences: string[] = [];
    const added: SourceRelationColumn[] = [];

    for (const c of m.columns) {
      const t = byName.get(c.name);
      if (!t) added.push(c);
      else if (t.type !== c.type) differences.push(`column ${c.name} is ${c.type} on the source, ${t.type} on the target`);
    }
    // Compared with the target and the model, not only with the previous relation event: the
    // first event after a restart (or for a table that had no change yet) must see a drop too.
    const streamed = new Set(m.columns.map((c) => c.name));
    const migrated = new Set([...model.columns.map((c) => c.name), ...(previous?.columns ?? [])]);
    // The target's own columns (key redesign, mapping add-column) are not the source's to send.
    const targetOnly = new Set(model.columns.filter((c) => c.added).map((c) => c.name));
    for (const t of target) {
      if (streamed.has(t.name) || t.generated || targetOnly.has(t.name)) continue;
      if (migrated.has(t.name)) differences.push(`column ${t.name} is no longer in the source's changes: it was dropped or renamed on the source`);
      else if (t.notNull && !t.hasDefault) differences.push(`column ${t.name} (NOT NULL, no default) on the target is not in the source's changes`);
    }
    // Rows are found by the primary key (the target's unique index): with REPLICA IDENTITY FULL
    // the stream flags every column, and the key is still the primary key's. A table without a
    // primary key is applied by whole-row match, which needs the whole old row: identity FULL.
    const modelKey = model.primaryKey?.columns ?? [];
    const keyColumns = modelKey.map((name) => m.columns.findIndex((c) => c.name === name));
    if (modelKey.length === 0 && !m.fullIdentity) differences.push('it has no primary key and its replica identity is not FULL');
    else if (keyColumns.includes(-1)) differences.push(`its primary key (${modelKey.join(', ')}) is no longer in the stream's columns`);

    // Nullable, and either no default or one existing source rows read without a rewrite.
    const addable = differences.length === 0 ? added.filter((c) => !c.notNull && !c.volatileDefault) : [];
    if (differences.length > 0 || addable.length !== added.length) {
      const refused = added.filter((c) => !addable.some((a) => a.name === c.name)).map((c) => `column ${c.name} was added on the source NOT NULL or with a volatile default`);
      throw schemaChanged({ table: key, difference: [...differences, ...refused].join('; ') });
    }
    await beforeChange(addable.length > 0);
    for (const a of addable) {
      await this.target.query(
        `ALTER TABLE ${qualifiedTable(model.schema, model.name)} ADD COLUMN IF NOT EXISTS ${quoteIdent(a.name)} ${a.type}${a.storedDefault ? ` DEFAULT ${a.storedDefault}` : ''}`,
      );
    }
    if (addable.length > 0) this.#targetColumns.delete(key);
    const columns = m.columns.map((c) => c.name);
    const actions = this.foreignKeyActions ? await this.#foreignKeyActions(model, columns) : [];
    this.#relations.set(m.id, {
      key,
      schema: model.schema,
      name: model.name,
      columns,
      keyColumns,
      ...(targetOnly.size > 0 ? { carried: [...targetOnly] } : {}),
      ...(actions.length > 0 ? { foreignKeyActions: actions } : {}),
    });
    return addable.map((a) => a.name);
  }

  /** The target's foreign keys referencing the table with an action (CASCADE, SET NULL, SET DEFAULT). */
  async #foreignKeyActions(t: TableModel, columns: string[]): Promise<ForeignKeyAction[]> {
    const r = await this.target.query<{ child_schema: string; child: string; child_columns: string[]; parent_columns: string[]; del: string; upd: string }>(
      `SELECT cn.nspname AS child_schema, cc.relname AS child,
              ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS x(n, i) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.i) AS child_columns,
              ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS x(n, i) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.i) AS parent_columns,
              k.confdeltype::text AS del, k.confupdtype::text AS upd
         FROM pg_constraint k JOIN pg_class cc ON cc.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
        WHERE k.contype = 'f' AND k.confrelid = $1::regclass AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))`,
      [qualifiedTable(t.schema, t.name)],
    );
    const action = (x: string) => (({ c: 'cascade', n: 'set null', d: 'set default' }) as Record<string, ReferentialAction | undefined>)[x];
    return r.rows
      .map((x) => ({
        child: qualifiedTable(x.child_schema, x.child),
        childColumns: x.child_columns.map(quoteIdent),
        parentColumns: x.parent_columns.map((n) => columns.indexOf(n)),
        ...(action(x.del) ? { onDelete: action(x.del) } : {}),
        ...(action(x.upd) ? { onUpdate: action(x.upd) } : {}),
      }))
      .filter((a) => a.parentColumns.every((i) => i >= 0));
  }

  async #columnsOnTarget(t: TableModel): Promise<TargetColumn[]> {
    const key = qualifiedKey(t);
    const cached = this.#targetColumns.get(key);
    if (cached) return cached;
    const r = await this.target.query<TargetColumn>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type, attnotnull AS "notNull", atthasdef AS "hasDefault",
              attgenerated <> '' AS generated
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [qualifiedTable(t.schema, t.name)],
    );
    this.#targetColumns.set(key, r.rows);
    return r.rows;
  }
}

export function schemaChanged(c: SchemaChange): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.SchemaChanged,
    nonRetryable: true,
    message: `source table ${c.table} changed while CDC ran: ${c.difference}`,
    details: [
      {
        table: c.table,
        hint: `make the target table match the source (or undo the change on the source), then run dbferry retry; CDC resumes from its last applied transaction`,
      },
    ],
  });
}

import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import { inParallel } from '../../plan/in-parallel';
import type { ActivityInput, TableValidationResult, ValidateResult } from '../../plan/migration-types';
import { descendantsOf, qualifiedKey, sourceTable, type TableModel } from '../../plan/schema-model';
import type { ChecksumMethod, SourceEngine, SourceReader } from '../engine';
import { withHeartbeat } from '../heartbeat';
import { tableValidated } from '../telemetry';
import { targetChecksum } from '../pg/checksum';
import { closeQuietly, connect, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { readTableLoads, recordValidations } from '../target/bookkeeping';
import { TABLES_LISTED } from '../../plan/table-lists';
import { loadModel } from '../target/model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { orphansQuery, wrongLinksQuery } from '../target/reference-ddl';

const WHOLE = { kind: 'whole' } as const;
const TREE = { kind: 'tree' } as const;
type Compared = Omit<TableValidationResult, 'table' | 'equal'>;

/**
 * Compares every target table with what the full load read from the source inside its
 * snapshot (count and checksum recorded then): never against a source that kept moving.
 * With CDC, validation runs after the cutover drain, when the source has stopped moving:
 * both sides are read now.
 */
export async function validate(input: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<ValidateResult> {
  const { plan } = input;
  await refuseColumnDifferences(input, engine, tgt);
  return readsSourceAtValidation(plan) ? validateBothSides(input, engine, tgt) : validateAgainstLoad(input, tgt);
}

/**
 * Whether validation reads the source again rather than compare with what the load recorded:
 * with CDC (the source moved since the load) and with DMS (it records no count or checksum as
 * it loads). The loaders then sum no checksum of their own: nothing would read it.
 */
export function readsSourceAtValidation(plan: ActivityInput['plan']): boolean {
  return plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc' || plan.runner === 'aws';
}

/**
 * "Equal" is about what an application reads: a column added, dropped or renamed on the source
 * while the migration ran (after the load's snapshot, or during CDC with no change after it)
 * is not on the target, and rows compared over the migrated columns alone would look equal.
 * The source's columns now are compared with the target's.
 */
async function refuseColumnDifferences({ migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<void> {
  const model = await loadModel(tgt, migration.runId);
  const now = new Map((await engine.introspect()).tables.map((t) => [qualifiedKey(t), t]));
  const onTarget = await withConnection(tgt, 'validate', async (c) => {
    const r = await c.query<{ schema: string; name: string; cols: string[] | null }>(
      `SELECT x.s AS schema, x.t AS name,
              (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                WHERE a.attrelid = to_regclass(format('%I.%I', x.s, x.t)) AND a.attnum > 0 AND NOT a.attisdropped) AS cols
         FROM unnest($1::text[], $2::text[]) AS x(s, t)`,
      [model.tables.map((t) => t.schema), model.tables.map((t) => t.name)],
    );
    return new Map(r.rows.map((row) => [qualifiedKey(row), new Set(row.cols ?? [])]));
  });
  const differences: string[] = [];
  for (const t of model.tables) {
    const key = qualifiedKey(t);
    const sourceKey = qualifiedKey(sourceTable(t));
    const source = now.get(sourceKey);
    if (!source) {
      differences.push(`${sourceKey} is no longer on the source (dropped or renamed)`);
      continue;
    }
    // Compared under the source's names: the target's own columns (key redesign, add-column)
    // and the columns a mapping removes are no difference.
    const byName = new Map(t.columns.map((c) => [c.name, c]));
    const target = new Set([...(onTarget.get(key) ?? [])].filter((n) => !byName.get(n)?.added).map((n) => byName.get(n)?.sourceName ?? n));
    const removed = new Set((t.removedColumns ?? []).map((c) => c.name));
    const sourceCols = source.columns.map((c) => c.name).filter((n) => !removed.has(n));
    const missing = sourceCols.filter((c) => !target.has(c));
    const extra = [...target].filter((c) => !sourceCols.includes(c));
    if (missing.length > 0) differences.push(`${sourceKey} has column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} on the source, not on the target`);
    if (extra.length > 0) differences.push(`${sourceKey} has column${extra.length > 1 ? 's' : ''} ${extra.join(', ')} on the target, not on the source`);
  }
  if (differences.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.SchemaChanged,
    nonRetryable: true,
    message: `the source's tables changed while the migration ran: ${differences.slice(0, 10).join('; ')}${differences.length > 10 ? `; and ${differences.length - 10} more` : ''}`,
    details: [{ table: differences[0]!.split(' ')[0], hint: 'make the target tables match the source (add or drop the columns and fill them), then run dbferry retry to validate again' }],
  });
}

async function validateAgainstLoad({ plan, migration }: ActivityInput, tgt: PgEndpoint): Promise<ValidateResult> {
  const model = await loadModel(tgt, migration.runId);
  const loads = await withConnection(tgt, 'validate', (c) => readTableLoads(c, migration.runId));
  const descendants = descendantsOf(model);
  return validateTables({ plan, migration }, model.tables, tgt, undefined, async ({ target }, t) => {
    const key = qualifiedKey(t);
    const load = loads.get(key);
    const method = (load?.checksum_method ?? 'text-hash') as ChecksumMethod;
    const withChecksum = plan.validate.checksums && load?.source_checksum != null && method !== ('mixed' as string);
    const r = await count(target, tgt, t, withChecksum, method);
    const out: Compared = { sourceRows: load?.rows ?? 'not loaded', targetRows: r.rows, checksum: !withChecksum ? 'not-checked' : r.checksum === load!.source_checksum ? 'equal' : 'different' };
    const kids = descendants.get(key);
    if (kids) {
      // The load read each table in one snapshot: the parent as a query reads it holds their
      // rows together. Counted (a descendant's columns may differ from the parent's, so its
      // recorded checksum does not add up to the parent's).
      const recorded = [key, ...kids].map((k) => loads.get(k)?.rows);
      const sourceRows = recorded.every((n) => n !== undefined) ? recorded.reduce((a, n) => a + BigInt(n!), 0n).toString() : 'not loaded';
      const tree = await count(target, tgt, t, false, 'text-hash', false);
      out.withDescendants = { sourceRows, targetRows: tree.rows, checksum: 'not-checked' };
    }
    return out;
  });
}

/** Count and checksum of each table read on both sides now (the same method on both). */
async function validateBothSides({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<ValidateResult> {
  const model = await loadModel(tgt, migration.runId);
  const descendants = descendantsOf(model);
  const compare = async (source: SourceReader, target: Client, t: TableModel, tree: boolean): Promise<Compared> => {
    const s = await source.checksum(t, tree ? TREE : WHOLE, plan.validate.checksums);
    const r = await count(target, tgt, t, plan.validate.checksums, s.method, !tree);
    return { sourceRows: s.rows, targetRows: r.rows, checksum: !plan.validate.checksums ? 'not-checked' : r.checksum === s.checksum ? 'equal' : 'different' };
  };
  return validateTables({ plan, migration }, model.tables, tgt, engine, async ({ source, target }, t) => {
    const own = await compare(source!, target, t, false);
    // A parent as an application reads it: with its partitions' or children's rows.
    if (descendants.has(qualifiedKey(t))) own.withDescendants = await compare(source!, target, t, true);
    return own;
  });
}

/** The target's count (and checksum) of one table. */
async function count(c: Client, tgt: PgEndpoint, t: TableModel, withChecksum: boolean, method: ChecksumMethod, only = true) {
  try {
    return await targetChecksum(c, t, withChecksum, '', method, only);
  } catch (err) {
    const key = qualifiedKey(t);
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: key, doing: `validating ${key}` });
  }
}

/**
 * Key redesign: a new reference is right when it points at the parent its row's natural key
 * names (or is NULL when none does). The source has no such column, so this is checked on the
 * target alone, against the natural key columns the checksum compared with the source.
 */
async function checkReferences(c: Client, tgt: PgEndpoint, t: TableModel): Promise<NonNullable<TableValidationResult['references']>> {
  const out: NonNullable<TableValidationResult['references']> = [];
  for (const ref of t.references ?? []) {
    try {
      const wrong = await c.query<{ n: string }>(wrongLinksQuery(t, ref));
      const orphans = await c.query<{ n: string }>(orphansQuery(t, ref, 0));
      out.push({ column: ref.column, wrong: wrong.rows[0]!.n, orphans: orphans.rows[0]!.n });
    } catch (err) {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: qualifiedKey(t), doing: `checking ${ref.column} against ${qualifiedKey(ref.parent)}` });
    }
  }
  return out;
}

/**
 * Columns added by a mapping's expression: the source has no such column to compare with, so
 * each row's value is checked against the expression over the row's own (validated) columns.
 */
async function checkComputed(c: Client, tgt: PgEndpoint, t: TableModel): Promise<NonNullable<TableValidationResult['computed']>> {
  const out: NonNullable<TableValidationResult['computed']> = [];
  for (const col of t.columns) {
    if (col.added?.kind !== 'expression' || /\bnow\(\)/.test(col.added.sql)) continue;
    try {
      const r = await c.query<{ n: string }>(computedMismatchQuery(t, col.name, col.added.sql));
      out.push({ column: col.name, wrong: r.rows[0]!.n });
    } catch (err) {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: qualifiedKey(t), doing: `checking the computed column ${col.name}` });
    }
  }
  return out;
}

/** Rows of `t` whose computed column is not what its expression gives for them. */
export function computedMismatchQuery(t: TableModel, column: string, sql: string): string {
  return `SELECT count(*)::text AS n FROM ONLY ${qualifiedTable(t.schema, t.name)} AS r WHERE r.${quoteIdent(column)} IS DISTINCT FROM (${sql})`;
}

interface Lane {
  target: Client;
  source?: SourceReader;
}

/**
 * Runs `compare` over every table, `load.parallel` at once, each lane with its own target
 * connection (and source reader, when the source is read now); heartbeats the count done.
 */
async function validateTables(
  { plan, migration }: Pick<ActivityInput, 'plan' | 'migration'>,
  tables: TableModel[],
  tgt: PgEndpoint,
  engine: SourceEngine | undefined,
  compare: (lane: Lane, t: TableModel) => Promise<Compared>,
): Promise<ValidateResult> {
  const started = Date.now();
  const results: TableValidationResult[] = [];
  const progress = { tablesDone: 0, tablesTotal: tables.length };
  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Lane[] = [];
    try {
      await inParallel(tables, plan.load.parallel, async (t, i) => {
        lanes[i] ??= { target: await connect(tgt, { purpose: 'validate' }), ...(engine ? { source: await engine.openReader() } : {}) };
        const r = await compare(lanes[i]!, t);
        const references = await checkReferences(lanes[i]!.target, tgt, t);
        const computed = await checkComputed(lanes[i]!.target, tgt, t);
        const same = (x: Omit<Compared, 'withDescendants' | 'references' | 'computed'>) => x.sourceRows === x.targetRows && x.checksum !== 'different';
        const equal = same(r) && (!r.withDescendants || same(r.withDescendants)) && references.every((x) => x.wrong === '0') && computed.every((x) => x.wrong === '0');
        results.push({
          table: qualifiedKey(t),
          ...r,
          ...(references.length > 0 ? { references } : {}),
          ...(computed.length > 0 ? { computed } : {}),
          equal,
        });
        tableValidated(qualifiedKey(t), equal);
        progress.tablesDone++;
      });
    } finally {
      await Promise.all(lanes.flatMap((l) => (l.source ? [closeQuietly(l.target), l.source.close()] : [closeQuietly(l.target)])));
    }
    await withConnection(tgt, 'record the validation', (c) => recordValidations(c, migration.runId, results));
    const different = results.filter((r) => !r.equal).length;
    return {
      // The differing tables first: none hides among those left out.
      tables: results.sort((a, b) => Number(a.equal) - Number(b.equal) || a.table.localeCompare(b.table)).slice(0, TABLES_LISTED),
      totals: { tables: results.length, equal: results.length - different, different },
      ms: Date.now() - started,
    };
  });
}

import { targetModelOrThrow } from '../target/target-model';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, CdcPrepareResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { appliedPosition, initProgress } from '../apply/progress';
import type { SourceEngine } from '../engine';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { ensureBookkeeping, readModel } from '../target/bookkeeping';

/**
 * Everything CDC needs before it streams, each part idempotent: the schema model on the target
 * (mode cdc has no create-tables step, so it is read from the source here), target tables able
 * to take idempotent changes (a unique key on the replica identity), what the source engine
 * needs (PostgreSQL: publication and slot) and the progress row the applier resumes from.
 */
export async function prepareCdc({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<CdcPrepareResult> {
  const { progress, model } = await ensureCdcModel({ plan, migration }, engine, tgt);
  if (plan.mode === 'full-load-and-cdc' && !progress) await refuseReplayedKeylessTables(tgt, model, migration.runId, engine);

  const afterLoad = plan.mode === 'full-load-and-cdc';
  const loadPositions = afterLoad && progress === undefined ? await withConnection(tgt, 'prepare CDC', (c) => readLoadPositions(c, migration.runId)) : [];
  const prepared = await engine.cdc.prepare({
    model,
    migration,
    afterLoad,
    loadPositions,
    ...(progress !== undefined ? { resumeAt: progress } : {}),
    // Only a first start may begin later than the source's start; a resumed one goes on where it was.
    ...(progress === undefined && plan.cdc.startPosition ? { startPosition: plan.cdc.startPosition } : {}),
  });
  if (progress !== undefined) return { sourceObjects: prepared.resources, startPosition: progress };
  await withConnection(tgt, 'prepare CDC', (c) =>
    initProgress(c, migration, { commitPosition: prepared.appliedThrough, endPosition: prepared.start }, prepared.resources.join(', ')),
  );
  return { sourceObjects: prepared.resources, startPosition: prepared.start };
}

/**
 * The schema model CDC applies under, and where an earlier attempt stopped: the one the load
 * recorded, or (mode cdc, whose target was loaded some other way) read from the source now and
 * checked against the target's tables.
 */
export async function ensureCdcModel({ plan, migration }: Pick<ActivityInput, 'plan' | 'migration'>, engine: SourceEngine, tgt: PgEndpoint) {
  return withConnection(tgt, 'prepare CDC', async (c) => {
    await ensureBookkeeping(c);
    const applied = await appliedPosition(c, migration.runId);
    const recorded = await readModel(c, migration.runId);
    if (recorded) return { progress: applied, model: recorded };
    // Mode cdc: the target's tables were made some other way, under the mapping's names.
    const m = targetModelOrThrow(await engine.introspect(), plan);
    await checkTargetTables(c, m, tgt);
    await c.query('INSERT INTO _dbferry.migrations (run_id, name, model, statements_done) VALUES ($1, $2, $3, NULL) ON CONFLICT (run_id) DO NOTHING', [
      migration.runId,
      migration.name,
      JSON.stringify(m),
    ]);
    return { progress: applied, model: m };
  });
}

/** The source positions the load's tables were read at (engines without a slot start CDC at the earliest). */
async function readLoadPositions(c: Client, runId: string): Promise<string[]> {
  const r = await c.query<{ position: string }>('SELECT DISTINCT position FROM _dbferry.table_loads WHERE run_id = $1 AND position IS NOT NULL', [runId]);
  return r.rows.map((x) => x.position);
}

/** Mode cdc: the target was loaded some other way; it must have the tables and their keys. */
async function checkTargetTables(c: Client, model: SchemaModel, tgt: PgEndpoint): Promise<void> {
  const keyed = model.tables.filter((t): t is TableModel & { primaryKey: NonNullable<TableModel['primaryKey']> } => !!t.primaryKey?.columns);
  const r = await c.query<{ schema: string; name: string; has_table: boolean; has_key: boolean }>(
    `SELECT x.s AS schema, x.t AS name, to_regclass(format('%I.%I', x.s, x.t)) IS NOT NULL AS has_table,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass(format('%I.%I', x.s, x.t)) AND i.indisunique
                       AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                             WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))
                           = (SELECT array_agg(e.v ORDER BY e.v) FROM jsonb_array_elements_text(x.k) AS e(v))) AS has_key
       FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS x(s, t, k)`,
    [keyed.map((t) => t.schema), keyed.map((t) => t.name), keyed.map((t) => JSON.stringify(t.primaryKey.columns))],
  );
  const missing = r.rows.filter((x) => !x.has_table).map(qualifiedKey);
  if (missing.length > 0) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: mode cdc applies changes to existing tables, and ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing on the target`,
      details: [{ table: missing[0], hint: 'load the tables on the target first (or use mode full-load-and-cdc), then run dbferry retry' }],
    });
  }
  const unkeyed = r.rows.filter((x) => !x.has_key).map(qualifiedKey);
  if (unkeyed.length > 0) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: ${unkeyed.join(', ')} ${unkeyed.length === 1 ? 'has' : 'have'} no unique key on the source's primary key columns: changes could not be applied idempotently`,
      details: [{ table: unkeyed[0], hint: 'create the primary key on the target table, then run dbferry retry' }],
    });
  }
}

/**
 * CDC replays changes from the slot's start over tables a later snapshot loaded (its holder
 * died): by key that converges, but a table without one would get those rows twice.
 */
async function refuseReplayedKeylessTables(tgt: PgEndpoint, model: SchemaModel, runId: string, engine: SourceEngine): Promise<void> {
  const keyless = model.tables.filter((t) => !t.primaryKey && !t.partitioned).map(qualifiedKey);
  if (keyless.length === 0) return;
  const names = await withConnection(tgt, 'prepare CDC', async (c) => {
    if (engine.cdc.marksInStream) {
      // PostgreSQL: CDC starts at the slot's snapshot, the first generation's.
      const r = await c.query<{ table_key: string }>(
        `SELECT DISTINCT l.table_key FROM _dbferry.table_loads l
          WHERE l.run_id = $1 AND l.table_key = ANY($2::text[])
            AND l.snapshot IS DISTINCT FROM (SELECT snapshot FROM _dbferry.snapshots WHERE run_id = $1 AND slot IS NOT NULL ORDER BY generation LIMIT 1)`,
        [runId, keyless],
      );
      return r.rows.map((x) => x.table_key);
    }
    // Engines without a slot: CDC starts at the earliest position any table was read at.
    const r = await c.query<{ table_key: string; position: string }>(
      'SELECT table_key, position FROM _dbferry.table_loads WHERE run_id = $1 AND position IS NOT NULL',
      [runId],
    );
    const start = r.rows.map((x) => x.position).sort((a, b) => engine.cdc.compare(a, b))[0];
    return [...new Set(r.rows.filter((x) => keyless.includes(x.table_key) && start !== undefined && engine.cdc.compare(x.position, start) > 0).map((x) => x.table_key))];
  });
  if (names.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.PreflightBlocked,
    nonRetryable: true,
    message: `${tgt.description}: ${names.join(', ')} (no primary key) ${names.length === 1 ? 'was' : 'were'} loaded under a later snapshot than the one CDC starts from (the first snapshot holder died): replaying changes would insert rows twice`,
    details: [{ table: names[0], hint: 'abort, drop the target tables and start the migration again (or add a primary key on the source first)' }],
  });
}

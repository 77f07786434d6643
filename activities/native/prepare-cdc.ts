import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import { formatLsn, parseLsn } from '../postgres/lsn';
import type { ActivityInput, CdcPrepareResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { ensureBookkeeping, readModel } from '../target/bookkeeping';
import { resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { introspectPostgres } from '../postgres/introspect';
import { tableSelector } from '../postgres/selection';
import { ensurePublication } from '../postgres/cdc/publication';
import { createSlot } from '../postgres/cdc/replication';

/**
 * Everything CDC needs before it streams, each part idempotent: the schema model on the target
 * (mode cdc has no create-tables step, so it is read from the source here), target tables able
 * to take idempotent changes (a unique key on the replica identity), the publication, the slot
 * and the progress row the applier resumes from.
 */
export async function prepareCdcPostgres({ plan, migration }: ActivityInput): Promise<CdcPrepareResult> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const { slot, publication } = plan.cdc;

  const { progress, model } = await withConnection(tgt, 'prepare CDC', async (c) => {
    await ensureBookkeeping(c);
    const r = await c.query<{ end_lsn: string }>('SELECT end_lsn::text FROM _dbferry.cdc_progress WHERE run_id = $1', [migration.runId]);
    const recorded = await readModel(c, migration.runId);
    if (recorded) return { progress: r.rows[0], model: recorded };
    const m = await withConnection(src, 'introspect', (s) => introspectPostgres(s, tableSelector(plan)));
    await checkTargetTables(c, m, tgt);
    await c.query('INSERT INTO _dbferry.migrations (run_id, name, model, statements_done) VALUES ($1, $2, $3, NULL) ON CONFLICT (run_id) DO NOTHING', [
      migration.runId,
      migration.name,
      JSON.stringify(m),
    ]);
    return { progress: r.rows[0], model: m };
  });
  if (plan.mode === 'full-load-and-cdc' && !progress) await refuseReplayedKeylessTables(tgt, model, migration.runId);

  const sourceState = await withConnection(src, 'prepare CDC', async (c) => {
    await refuseKeylessTables(c, model, src);
    const pub = await ensurePublication(c, publication, model.tables, migration, src.description);
    const r = await c.query<{ confirmed: string | null; plugin: string; database: string }>(
      'SELECT confirmed_flush_lsn::text AS confirmed, plugin, database FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    return { pub, slot: r.rows[0] };
  });

  if (sourceState.slot && (sourceState.slot.plugin !== 'pgoutput' || sourceState.slot.database !== src.database)) {
    throw ApplicationFailure.create({
      type: FailureType.TargetObjectConflict,
      nonRetryable: true,
      message: `${src.description}: replication slot ${slot} exists but belongs to ${sourceState.slot.plugin} on database ${sourceState.slot.database}`,
      details: [{ hint: `name another cdc.slot in the plan, or drop slot ${slot} if it is not in use, then run dbferry retry` }],
    });
  }

  let confirmed = sourceState.slot?.confirmed;
  if (!sourceState.slot) {
    if (plan.mode === 'full-load-and-cdc') {
      // The load ran inside the slot's snapshot: without that slot, changes since are gone.
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${src.description}: replication slot ${slot}, created with the load's snapshot, no longer exists: changes made since the load cannot be recovered`,
        details: [{ hint: 'abort this migration and start it again (the target tables must be dropped first)' }],
      });
    }
    const created = await createSlot(src, slot);
    confirmed = formatLsn(created);
  }

  let startLsn = progress?.end_lsn;
  if (!startLsn) {
    const slotStart = parseLsn(confirmed!);
    const asked = plan.cdc.startPosition ? parseLsn(plan.cdc.startPosition) : undefined;
    if (asked !== undefined && asked < slotStart) {
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${src.description}: cdc.startPosition ${plan.cdc.startPosition} is before slot ${slot}'s start ${confirmed}: the changes in between are no longer available`,
        details: [{ hint: 'load the target again from a later point, or remove cdc.startPosition to start from the slot' }],
      });
    }
    const start = asked ?? slotStart;
    startLsn = formatLsn(start);
    await withConnection(tgt, 'prepare CDC', (c) =>
      c.query(
        `INSERT INTO _dbferry.cdc_progress (run_id, slot, publication, commit_lsn, end_lsn)
         VALUES ($1, $2, $3, $4::pg_lsn, $5::pg_lsn) ON CONFLICT (run_id) DO NOTHING`,
        // Transactions that commit before the start are in the target already.
        [migration.runId, slot, publication, formatLsn(start > 0n ? start - 1n : 0n), startLsn],
      ),
    );
  }
  return { slot, publication, startLsn, publicationExisted: sourceState.pub.existed && !sourceState.pub.ownedByDbferry };
}

/**
 * Changes find their rows by the primary key; a table without one only with REPLICA IDENTITY
 * FULL (its changes carry the whole old row).
 */
async function refuseKeylessTables(c: Client, model: SchemaModel, src: PgEndpoint): Promise<void> {
  const candidates = model.tables.filter((t) => !t.primaryKey && !t.partitioned);
  if (candidates.length === 0) return;
  const r = await c.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND c.relreplident <> 'f'`,
    [candidates.map((t) => t.schema), candidates.map((t) => t.name)],
  );
  const keyless = r.rows;
  if (keyless.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.PreflightBlocked,
    nonRetryable: true,
    message: `${src.description}: CDC needs a primary key (or REPLICA IDENTITY FULL) on every table; ${keyless.map(qualifiedKey).join(', ')} ${keyless.length === 1 ? 'has' : 'have'} neither`,
    details: [{ table: qualifiedKey(keyless[0]!), hint: 'add a primary key on the source (or ALTER TABLE … REPLICA IDENTITY FULL), or exclude the table, then run dbferry retry' }],
  });
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
async function refuseReplayedKeylessTables(tgt: PgEndpoint, model: SchemaModel, runId: string): Promise<void> {
  const keyless = model.tables.filter((t) => !t.primaryKey && !t.partitioned).map(qualifiedKey);
  if (keyless.length === 0) return;
  const r = await withConnection(tgt, 'prepare CDC', (c) =>
    c.query<{ table_key: string }>(
      `SELECT DISTINCT l.table_key FROM _dbferry.table_loads l
        WHERE l.run_id = $1 AND l.table_key = ANY($2::text[])
          AND l.snapshot IS DISTINCT FROM (SELECT snapshot FROM _dbferry.snapshots WHERE run_id = $1 AND slot IS NOT NULL ORDER BY generation LIMIT 1)`,
      [runId, keyless],
    ),
  );
  if (r.rows.length === 0) return;
  const names = r.rows.map((x) => x.table_key);
  throw ApplicationFailure.create({
    type: FailureType.PreflightBlocked,
    nonRetryable: true,
    message: `${tgt.description}: ${names.join(', ')} (no primary key) ${names.length === 1 ? 'was' : 'were'} loaded under a later snapshot than the slot's (the first snapshot holder died): replaying changes would insert rows twice`,
    details: [{ table: names[0], hint: 'abort, drop the target tables and start the migration again (or add a primary key on the source first)' }],
  });
}

import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { CdcTableStats, MigrationRef } from '../../plan/migration-types';
import type { EnginePosition } from '../engine';
import type { PgEndpoint } from '../pg/connection';
import { ensureBookkeeping } from '../target/bookkeeping';

/** The last source transaction applied: where it committed and where the source may forget up to. */
export interface AppliedPosition {
  commitPosition: EnginePosition;
  endPosition: EnginePosition;
}

/**
 * The progress row CDC resumes from, written before the applier first starts: transactions
 * committed before `start` are in the target already (loaded, or applied some other way).
 */
export async function initProgress(c: Client, migration: MigrationRef, start: { commitPosition: EnginePosition; endPosition: EnginePosition }, resources: string): Promise<void> {
  await c.query(
    `INSERT INTO _dbferry.cdc_progress (run_id, source_objects, commit_position, end_position)
     VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING`,
    [migration.runId, resources, start.commitPosition, start.endPosition],
  );
}

/** Where an earlier attempt stopped, or undefined before CDC was prepared. */
export async function appliedPosition(c: Client, runId: string): Promise<EnginePosition | undefined> {
  const r = await c.query<{ end_position: string }>('SELECT end_position FROM _dbferry.cdc_progress WHERE run_id = $1', [runId]);
  return r.rows[0]?.end_position;
}

export async function readProgress(c: Client, runId: string, tgt: PgEndpoint) {
  await ensureBookkeeping(c);
  const r = await c.query<{ commit_position: string; end_position: string; marker_position: string | null; transactions: string; changes: string }>(
    'SELECT commit_position, end_position, marker_position, transactions::text, changes::text FROM _dbferry.cdc_progress WHERE run_id = $1',
    [runId],
  );
  const row = r.rows[0];
  if (!row) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: this migration has no CDC progress row (_dbferry.cdc_progress): CDC was not prepared`,
      details: [{ hint: 'run dbferry retry: the cdc step prepares it first' }],
    });
  }
  const stats = await c.query<{ table_key: string; inserts: string; updates: string; deletes: string; truncates: string }>(
    'SELECT table_key, inserts::text, updates::text, deletes::text, truncates::text FROM _dbferry.cdc_stats WHERE run_id = $1',
    [runId],
  );
  return {
    position: { commitPosition: row.commit_position, endPosition: row.end_position } as AppliedPosition,
    markerPosition: row.marker_position,
    transactions: Number(row.transactions),
    changes: Number(row.changes),
    tables: stats.rows.map(
      (x): CdcTableStats => ({ table: x.table_key, inserts: Number(x.inserts), updates: Number(x.updates), deletes: Number(x.deletes), truncates: Number(x.truncates) }),
    ),
  };
}

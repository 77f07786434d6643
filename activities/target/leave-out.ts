import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { LeaveOutInput, LeaveOutResult } from '../../plan/migration-types';
import { qualifiedKey, withoutTable } from '../../plan/schema-model';
import { qualifiedTable } from '../../plan/sql-names';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { readModelRecord } from './bookkeeping';

/**
 * Takes a table out of the migration, at the operator's word, after it was dropped on the
 * source: in one target transaction the run's model loses it (with the foreign keys that
 * referenced it), the load plan and the ledger forget its chunks, and the partial copy dbferry
 * made of it is dropped, so the target mirrors the source. Idempotent: a retry finds it gone.
 */
export async function leaveOutTable({ migration, table }: LeaveOutInput, tgt: PgEndpoint): Promise<LeaveOutResult> {
  return withConnection(tgt, 'take a table out of the migration', async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT 1 FROM _dbferry.migrations WHERE run_id = $1 FOR UPDATE', [migration.runId]);
    const record = await readModelRecord(c, migration.runId);
    const model = record?.model;
    const t = model?.tables.find((x) => qualifiedKey(x) === table);
    if (!record || !model || !t) {
      await c.query('ROLLBACK');
      if (record?.model && (await c.query('SELECT 1 FROM _dbferry.migrations WHERE run_id = $1 AND $2 = ANY(left_out)', [migration.runId, table])).rowCount) {
        return { table, droppedOnTarget: false };
      }
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${tgt.description}: ${table} is not one of this migration's tables`,
      });
    }
    await c.query('UPDATE _dbferry.migrations SET model = $2, revision = revision + 1, left_out = array_append(left_out, $3) WHERE run_id = $1', [
      migration.runId,
      JSON.stringify(withoutTable(model, table)),
      table,
    ]);
    await c.query(
      `UPDATE _dbferry.load_tasks SET units = coalesce((SELECT jsonb_agg(u) FROM jsonb_array_elements(units) u WHERE u->>'table' <> $2), '[]'::jsonb)
        WHERE run_id = $1 AND units @> jsonb_build_array(jsonb_build_object('table', $2::text))`,
      [migration.runId, table],
    );
    await c.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND table_key = $2', [migration.runId, table]);
    const dropped = await c.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [qualifiedTable(t.schema, t.name)]);
    if (dropped.rows[0]?.present) await c.query(`DROP TABLE ${qualifiedTable(t.schema, t.name)}`);
    await c.query('COMMIT');
    return { table, droppedOnTarget: Boolean(dropped.rows[0]?.present) };
  }).catch((err) => {
    if (err instanceof ApplicationFailure) throw err;
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table, doing: `taking ${table} out of the migration` });
  });
}

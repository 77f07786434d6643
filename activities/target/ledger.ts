import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { LoadUnit } from '../../plan/load-chunks';
import { workerIdentity } from '../identity';

/**
 * The load ledger on the target (`_dbferry.load_tasks`, `_dbferry.table_loads`): a unit's rows
 * and its ledger row commit in one target transaction, so a retried task finds exactly what is
 * done, whatever died in between.
 */

/** The units of one task of the stored load plan. */
export async function readTask(target: Client, runId: string, task: number): Promise<LoadUnit[]> {
  const r = await target.query<{ units: LoadUnit[] }>('SELECT units FROM _dbferry.load_tasks WHERE run_id = $1 AND task = $2', [runId, task]);
  if (!r.rows[0]) {
    throw ApplicationFailure.create({
      type: FailureType.DatabaseError,
      nonRetryable: true,
      message: `load task ${task} of this run is not in _dbferry.load_tasks on the target (was _dbferry changed by hand?)`,
    });
  }
  return r.rows[0].units;
}

/**
 * Inside the caller's transaction: takes the task for this transaction and says whether it is
 * done already. Two attempts of one task can overlap (Temporal starts another when a heartbeat
 * is late, while the first may still be copying): the lock makes the later one wait for the
 * earlier to commit or die, then read the ledger again, so the task is copied once either way.
 * A whole table's ledger row left by a partly reset task goes with the TRUNCATE that reloads it.
 */
export async function claimTask(target: Client, runId: string, task: number, units: LoadUnit[]): Promise<boolean> {
  await target.query('SELECT pg_advisory_xact_lock(hashtext($1), $2)', [runId, task]);
  const loaded = await target.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM _dbferry.table_loads l, unnest($2::text[], $3::int[]) AS u(t, c)
      WHERE l.run_id = $1 AND l.table_key = u.t AND l.chunk = u.c`,
    [runId, units.map((u) => u.table), units.map((u) => u.chunk)],
  );
  if (loaded.rows[0]!.n === units.length) return true;
  const whole = units.filter((u) => u.chunk === 0).map((u) => u.table);
  await target.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND chunk = 0 AND table_key = ANY($2)', [runId, whole]);
  return false;
}

/** A unit's ledger row, in the transaction that loaded its rows (a plain INSERT: a second load of it fails). */
export async function recordUnit(
  target: Client,
  runId: string,
  unit: LoadUnit,
  r: { rows: string; bytes: number; checksum: string | null; method: string | null; snapshot: string; position: string; ms: number; converted?: string | undefined },
): Promise<void> {
  await target.query(
    `INSERT INTO _dbferry.table_loads (run_id, table_key, chunk, rows, bytes, source_checksum, checksum_method, snapshot, position, ms, worker, converted)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [runId, unit.table, unit.chunk, r.rows, r.bytes, r.checksum, r.method, r.snapshot, r.position, r.ms, workerIdentity(), r.converted ?? null],
  );
}

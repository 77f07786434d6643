import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { cutoverMarker } from '../../plan/cutover-marker';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, CleanupResult, CutoverAck, FinalizeResult } from '../../plan/migration-types';
import type { SourceEngine } from '../engine';
import { appliedPosition } from '../apply/progress';
import { withHeartbeat } from '../heartbeat';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { carrySequences, validateForeignKeys } from '../target/build-indexes';
import { loadModel } from '../target/model';
import { refreshMaterializedViews } from '../target/schema-objects';

/** How long no change may arrive before cutover goes ahead. */
const QUIET_SECONDS = 3;
/** How long the applier may take to reach the source's position before cutover is refused. */
const CATCH_UP_SECONDS = 60;

/**
 * Cutover's first half, run by the cutover Update: checks that the application's writes to the
 * migrated tables have stopped (none committed during a quiet period, with the applier caught
 * up past it), then writes the marker into the source's change stream. The applier stops once
 * it has applied the marker, so every change committed before it is on the target.
 */
export async function beginCutover({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<CutoverAck> {
  return withHeartbeat(() => ({ step: 'checking that writes have stopped' }), async () => {
    const t0 = await engine.cdc.now();
    await sleep(QUIET_SECONDS * 1000);
    await engine.cdc.waitConfirmed(CATCH_UP_SECONDS * 1000, () =>
      withConnection(tgt, 'cutover check', async (c) => appliedPosition(c, migration.runId)),
    );
    const progress = await withConnection(tgt, 'cutover check', async (c) => {
      const r = await c.query<{ last_change_at: string | null; last_change_table: string | null; changed_since: boolean }>(
        `SELECT last_change_at::text, last_change_table, coalesce(last_change_at >= $2::timestamptz, false) AS changed_since
           FROM _dbferry.cdc_progress WHERE run_id = $1`,
        [migration.runId, t0],
      );
      return r.rows[0];
    });
    if (progress?.changed_since) {
      throw ApplicationFailure.create({
        type: FailureType.CutoverRefused,
        nonRetryable: true,
        message: `writes are still arriving: ${progress.last_change_table} changed at ${progress.last_change_at} (source clock), during the ${QUIET_SECONDS} s check`,
        details: [{ hint: `stop the application's writes to the migrated tables, then run dbferry cutover ${plan.name} again` }],
      });
    }
    const markerPosition = await engine.cdc.writeMarker(cutoverMarker(migration));
    if (!engine.cdc.marksInStream) {
      // The applier reads it on the target and stops once it has applied up to it.
      await withConnection(tgt, 'cutover', (c) =>
        c.query('UPDATE _dbferry.cdc_progress SET stop_position = $2 WHERE run_id = $1', [migration.runId, markerPosition]),
      );
    }
    return { markerPosition, quietSeconds: QUIET_SECONDS };
  });
}

/**
 * Cutover's last step, after the applier stopped at the marker and validation passed: the
 * sequences get the source's final state (CDC does not carry them), then what CDC held on the
 * source is dropped (a forgotten slot keeps WAL until the disk fills).
 */
export async function finalizeCutover(
  { migration }: ActivityInput,
  engine: SourceEngine,
  tgt: PgEndpoint,
  /** What the runner removes once the target is final (the native runner: the slot and publication). */
  cleanup: () => Promise<FinalizeResult['cleanup']> = () => engine.cdc.cleanup(migration),
): Promise<FinalizeResult> {
  // Heartbeats: reading a table's maximum key can wait behind an application's lock on the target.
  return withHeartbeat(() => ({ step: 'carrying sequences, removing what CDC held on the source' }), async () => {
    const model = await loadModel(tgt, migration.runId);
    const fresh = await engine.sequenceStates(model.sequences);
    const sequences = await withConnection(tgt, 'carry sequences', async (c) => {
      // CDC changed their tables since the index build filled them.
      await refreshMaterializedViews(c, tgt, model.objects?.refresh ?? []);
      await validateForeignKeys(c, tgt, model);
      return carrySequences(fresh, tgt, c);
    });
    return { sequences, cleanup: await cleanup() };
  });
}

/** Abort and `dbferry cleanup`: removes what CDC held on the source. */
export async function cleanupSource({ plan, migration }: ActivityInput, engine: SourceEngine): Promise<CleanupResult> {
  if (plan.mode !== 'full-load-and-cdc' && plan.mode !== 'cdc') {
    return { dropped: [], kept: [`${engine.description}: nothing to remove (mode ${plan.mode} leaves nothing on the source)`] };
  }
  return engine.cdc.cleanup(migration);
}

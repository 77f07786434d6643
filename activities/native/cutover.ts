import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, CleanupResult, CutoverAck, FinalizeResult, MigrationRef } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { withHeartbeat } from '../heartbeat';
import { carrySequences } from '../target/build-indexes';
import { closeQuietly, connect, resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { loadModel } from '../target/model';
import { dropOwnedPublication } from '../postgres/cdc/publication';
import { dropSlot } from '../postgres/cdc/replication';

/** The prefix of dbferry's logical messages; the content names the migration. */
export const MARKER_PREFIX = 'dbferry';
export function cutoverMarker(m: MigrationRef): string {
  return `cutover ${m.name} ${m.runId}`;
}

/** How long no change may arrive before cutover goes ahead. */
const QUIET_SECONDS = 3;
/** How long the applier may take to reach the source's position before cutover is refused. */
const CATCH_UP_SECONDS = 60;

/** A refusal the operator must act on: cutover is not possible now, and nothing was changed. */
function refused(message: string, hint: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.CutoverRefused, nonRetryable: true, message, details: [{ hint }] });
}

/**
 * Cutover's first half, run by the cutover Update: checks that the application's writes to the
 * migrated tables have stopped (none committed during a quiet period, with the applier caught
 * up past it), then writes the marker into the source's WAL. The applier stops once it has
 * applied the marker, so every change committed before it is on the target.
 */
export async function beginCutoverPostgres({ plan, migration }: ActivityInput): Promise<CutoverAck> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  return withHeartbeat(() => ({ step: 'checking that writes have stopped' }), async () => {
    const source = await connect(src, { purpose: 'cutover' });
    try {
      const t0 = (await source.query<{ now: string }>('SELECT clock_timestamp()::text AS now')).rows[0]!.now;
      await sleep(QUIET_SECONDS * 1000);
      const w1 = (await source.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      await waitForSlot(source, plan.cdc.slot, w1, src);
      const progress = await withConnection(tgt, 'cutover check', async (c) => {
        const r = await c.query<{ last_change_at: string | null; last_change_table: string | null; changed_since: boolean }>(
          `SELECT last_change_at::text, last_change_table, coalesce(last_change_at >= $2::timestamptz, false) AS changed_since
             FROM _dbferry.cdc_progress WHERE run_id = $1`,
          [migration.runId, t0],
        );
        return r.rows[0];
      });
      if (progress?.changed_since) {
        throw refused(
          `writes are still arriving: ${progress.last_change_table} changed at ${progress.last_change_at} (source clock), during the ${QUIET_SECONDS} s check`,
          `stop the application's writes to the migrated tables, then run dbferry cutover ${plan.name} again`,
        );
      }
      const r = await source.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [MARKER_PREFIX, cutoverMarker(migration)]);
      return { markerLsn: r.rows[0]!.lsn, quietSeconds: QUIET_SECONDS };
    } catch (err) {
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'checking that writes have stopped' });
    } finally {
      await closeQuietly(source);
    }
  });
}

/** Waits until the slot has confirmed `lsn`: the applier has seen everything written before it. */
async function waitForSlot(source: Client, slot: string, lsn: string, src: PgEndpoint): Promise<void> {
  const deadline = Date.now() + CATCH_UP_SECONDS * 1000;
  for (;;) {
    const r = await source.query<{ ok: boolean | null; behind: string | null }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok, pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::text AS behind
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, lsn],
    );
    const row = r.rows[0];
    if (!row) throw refused(`${src.description}: replication slot ${slot} does not exist`, 'the migration cannot cut over without its slot; abort it');
    if (row.ok) return;
    if (Date.now() > deadline) {
      throw refused(
        `CDC is ${row.behind} bytes behind the source after ${CATCH_UP_SECONDS} s: writes may still be arriving`,
        'wait until dbferry status shows CDC caught up, then run dbferry cutover again',
      );
    }
    await sleep(250);
  }
}

/**
 * Cutover's last step, after the applier stopped at the marker and validation passed: the
 * sequences get the source's final state (CDC does not carry them), then the slot and the
 * publication dbferry created are dropped (a forgotten slot keeps WAL until the disk fills).
 */
export async function finalizeCutoverPostgres({ plan, migration }: ActivityInput): Promise<FinalizeResult> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  const sequences = await withConnection(tgt, 'carry sequences', (c) => carrySequences(src, tgt, model, c));
  const dropped = await dropReplication(src, plan, migration);
  return { sequences, droppedSlot: dropped.slot, droppedPublication: dropped.publication === 'dropped' };
}

/** Abort and `dbferry cleanup`: removes the slot and dbferry's publication from the source. */
export async function cleanupSourcePostgres({ plan, migration }: ActivityInput): Promise<CleanupResult> {
  const src = await resolveEndpoint(plan, 'source');
  const out: CleanupResult = { dropped: [], kept: [] };
  if (plan.mode !== 'full-load-and-cdc' && plan.mode !== 'cdc') {
    out.kept.push(`${src.description}: nothing to remove (mode ${plan.mode} leaves no slot or publication)`);
    return out;
  }
  const dropped = await dropReplication(src, plan, migration);
  if (dropped.slot) out.dropped.push(`${src.description}: replication slot ${plan.cdc.slot}`);
  else out.kept.push(`${src.description}: no replication slot ${plan.cdc.slot} (none left)`);
  if (dropped.publication === 'dropped') out.dropped.push(`${src.description}: publication ${plan.cdc.publication}`);
  else if (dropped.publication === 'not-ours') out.kept.push(`${src.description}: publication ${plan.cdc.publication} (it existed before this migration)`);
  else out.kept.push(`${src.description}: no publication ${plan.cdc.publication} (none left)`);
  return out;
}

async function dropReplication(src: PgEndpoint, plan: Plan, migration: MigrationRef) {
  return withConnection(src, 'drop slot and publication', async (c) => ({
    slot: await dropSlot(c, plan.cdc.slot),
    publication: await dropOwnedPublication(c, plan.cdc.publication, migration),
  }));
}

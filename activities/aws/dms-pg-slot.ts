/**
 * Mode cdc from PostgreSQL with DMS: DMS starts at a position only from a logical replication
 * slot made beforehand and named in the source endpoint (PostgreSQLSettings.SlotName). dbferry
 * makes it (test_decoding, which DMS reads), starts the task at the plan's LSN or the slot's
 * own start, whichever is later (as the native runner: transactions before `startPosition`
 * are skipped, none before the slot can be read), and drops it when the migration ends: a
 * slot left behind keeps WAL on the source until its disk fills.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { resolveEndpoint, withConnection } from '../pg/connection';
import { formatLsn, parseLsn } from '../postgres/lsn';

/** True for the plans whose DMS task reads from dbferry's own slot. */
export function readsOwnSlot(plan: Plan): boolean {
  return plan.runner === 'aws' && plan.mode === 'cdc' && plan.source.engine === 'postgres';
}

/** Makes the slot when missing; returns the LSN the task starts at. */
export async function ensureDmsSlot(plan: Plan): Promise<string> {
  const src = await resolveEndpoint(plan, 'source');
  return withConnection(src, 'DMS replication slot', async (c) => {
    const found = await c.query<{ lsn: string; plugin: string }>('SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text AS lsn, plugin FROM pg_replication_slots WHERE slot_name = $1', [plan.cdc.slot]);
    let lsn = found.rows[0]?.lsn;
    if (found.rows[0] && found.rows[0].plugin !== 'test_decoding') {
      throw ApplicationFailure.create({
        type: FailureType.TargetObjectConflict,
        nonRetryable: true,
        message: `${src.description}: replication slot ${plan.cdc.slot} exists with plugin ${found.rows[0].plugin}; DMS reads test_decoding`,
        details: [{ endpoint: 'source', hint: 'name another slot in cdc.slot, or drop that one, then dbferry retry' }],
      });
    }
    if (!lsn) {
      const made = await c.query<{ lsn: string }>("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'test_decoding')", [plan.cdc.slot]);
      lsn = made.rows[0]!.lsn;
    }
    const from = plan.cdc.startPosition;
    return from && parseLsn(from) > parseLsn(lsn) ? formatLsn(parseLsn(from)) : lsn;
  });
}

/** Drops the slot (inactive: the task was stopped first); what was dropped, in words. */
export async function dropDmsSlot(plan: Plan): Promise<string | undefined> {
  if (!readsOwnSlot(plan)) return undefined;
  const src = await resolveEndpoint(plan, 'source');
  return withConnection(src, 'DMS replication slot', async (c) => {
    const r = await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [plan.cdc.slot]);
    return r.rowCount ? `replication slot ${plan.cdc.slot} on the source` : undefined;
  });
}

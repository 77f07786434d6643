import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, HeldSnapshot } from '../../plan/migration-types';
import { withHeartbeat } from '../heartbeat';
import { ensureBookkeeping } from '../target/bookkeeping';
import { closeQuietly, connect, resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { ensurePublication } from '../postgres/cdc/publication';
import { createSlotWithSnapshot } from '../postgres/cdc/replication';
import { loadModel } from '../target/model';
import { formatLsn } from '../postgres/lsn';

const CHECK_EVERY_MS = 5_000;
const CHECK_TIMEOUT_MS = 30_000;

/**
 * Exports one snapshot of the source and keeps it alive for the whole load: a snapshot lives
 * only as long as the transaction that exported it. The snapshot and its WAL position go into
 * _dbferry.snapshots on the target, where loader activities on any worker find and import it.
 * Runs until the workflow cancels it. Should this activity die (its worker killed, the source
 * connection lost), Temporal starts it again and it records a new generation: loaders pick the
 * newest up, and the positions recorded tell CDC how far it must apply idempotently.
 */
export async function holdSnapshotPostgres({ plan, migration }: ActivityInput): Promise<HeldSnapshot> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  let holder: Client | undefined;
  try {
    let held: { snapshot: string; lsn: string; slot?: string };
    // With CDC to follow, the first holder creates the slot and loads inside the slot's own
    // snapshot: CDC then starts exactly where the snapshot ends. A later generation (the slot
    // exists already) exports a plain snapshot; CDC replays idempotently from the slot's start.
    const slot = plan.mode === 'full-load-and-cdc' ? await prepareSlotForLoad(src, tgt, { plan, migration }) : undefined;
    if (slot?.created) {
      holder = slot.created.client;
      held = { snapshot: slot.created.snapshot, lsn: formatLsn(slot.created.consistentPoint), slot: plan.cdc.slot };
    } else {
      holder = await connect(src, { purpose: 'snapshot holder' });
      held = await exportSnapshot(holder, src);
    }
    const generation = await withConnection(tgt, 'record the load snapshot', async (c) => {
      await ensureBookkeeping(c);
      const r = await c.query<{ generation: number }>(
        `INSERT INTO _dbferry.snapshots (run_id, generation, snapshot, lsn, slot)
         SELECT $1, coalesce(max(generation), 0) + 1, $2, $3::pg_lsn, $4 FROM _dbferry.snapshots WHERE run_id = $1
         RETURNING generation`,
        [migration.runId, held.snapshot, held.lsn, held.slot ?? null],
      );
      return r.rows[0]!.generation;
    });
    const result = { snapshot: held.snapshot, lsn: held.lsn, generation };
    const heldSince = new Date().toISOString();
    const conn: Client = holder;
    return await withHeartbeat(() => ({ holding: result, heldSince }), async (signal) => {
      // A replication connection's snapshot dies with its next command: watch the socket instead.
      const lost = held.slot ? connectionLost(conn, src) : undefined;
      // It rejects again when the holder closes its own connection at the end: not an error then.
      lost?.catch(() => undefined);
      while (!signal?.aborted) {
        // Never race against `undefined` (no slot held): it wins at once, and the loop would
        // send thousands of `SELECT 1` a second to the source for the whole load.
        const pause = sleep(CHECK_EVERY_MS, undefined, { signal }).catch(() => undefined);
        await (lost ? Promise.race([pause, lost]) : pause);
        if (signal?.aborted) break;
        if (!held.slot) await stillAlive(conn, src);
      }
      return result;
    });
  } catch (err) {
    throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'holding the load snapshot' });
  } finally {
    await closeQuietly(holder);
  }
}

/**
 * CDC's publication first (pgoutput reads it as of each change), then the slot: created here
 * with its exported snapshot when it does not exist yet.
 */
async function prepareSlotForLoad(src: PgEndpoint, tgt: PgEndpoint, { plan, migration }: ActivityInput) {
  const model = await loadModel(tgt, migration.runId);
  const exists = await withConnection(src, 'prepare CDC', async (c) => {
    await ensurePublication(c, plan.cdc.publication, model.tables, migration, src.description);
    const r = await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [plan.cdc.slot]);
    return r.rows.length > 0;
  });
  if (exists) return {};
  return { created: await createSlotWithSnapshot(src, plan.cdc.slot) };
}

function connectionLost(c: Client, src: PgEndpoint): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(
        ApplicationFailure.create({
          type: FailureType.Transient,
          message: `${src.description}: the snapshot holder's replication connection closed`,
        }),
      );
    c.once('end', fail);
    c.once('error', fail);
  });
}

async function exportSnapshot(holder: Client, src: PgEndpoint): Promise<{ snapshot: string; lsn: string }> {
  try {
    // The transaction sits idle for hours by design: a server-side idle timeout would end it.
    await holder.query('SET idle_in_transaction_session_timeout = 0');
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await holder.query<{ snapshot: string; lsn: string }>(
      `SELECT pg_export_snapshot() AS snapshot,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
    );
    return rows[0]!;
  } catch (err) {
    throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'exporting the load snapshot' });
  }
}

/** A holder whose connection silently died would keep heartbeating over a dead snapshot. */
async function stillAlive(holder: Client, src: PgEndpoint): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          ApplicationFailure.create({
            type: FailureType.Transient,
            message: `${src.description}: the snapshot holder's connection did not answer for ${CHECK_TIMEOUT_MS / 1000} s`,
          }),
        ),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([holder.query('SELECT 1'), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import type { ActivityInput, HeldSnapshot } from '../../plan/migration-types';
import type { SourceEngine } from '../engine';
import { withHeartbeat } from '../heartbeat';
import { ownTaskQueue } from '../identity';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { ensureBookkeeping } from '../target/bookkeeping';
import { loadModel } from '../target/model';

/**
 * Opens one consistent read point of the source (PostgreSQL: an exported snapshot) and keeps
 * it alive for the whole load. The read point and its position go into _dbferry.snapshots on
 * the target, where loader activities on any worker find and join it. Runs until the workflow
 * cancels it. Should this activity die (its worker killed, the source connection lost),
 * Temporal starts it again and it records a new generation: loaders pick the newest up, and
 * the positions recorded tell CDC how far it must apply idempotently.
 */
export async function holdSnapshot({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<HeldSnapshot> {
  // With CDC to follow, the first holder also fixes where CDC starts (PostgreSQL: the slot).
  const forCdc = plan.mode === 'full-load-and-cdc';
  const tables = forCdc ? (await loadModel(tgt, migration.runId)).tables : [];
  const held = await engine.holdReadPoint({ forCdc, tables, migration });
  try {
    const generation = await withConnection(tgt, 'record the load snapshot', async (c) => {
      await ensureBookkeeping(c);
      const r = await c.query<{ generation: number }>(
        `INSERT INTO _dbferry.snapshots (run_id, generation, snapshot, position, slot, detail, worker_queue)
         SELECT $1, coalesce(max(generation), 0) + 1, $2, $3, $4, $5, $6 FROM _dbferry.snapshots WHERE run_id = $1
         RETURNING generation`,
        // `slot` marks the generation CDC starts from.
        [migration.runId, held.token, held.position, held.forCdc ? 'cdc-start' : null, held.describe ?? null, held.holderProcessOnly ? (ownTaskQueue() ?? null) : null],
      );
      return r.rows[0]!.generation;
    });
    const result = { snapshot: held.token, position: held.position, generation };
    const heldSince = new Date().toISOString();
    // `status` shows how the read point was taken while the load runs (MySQL: the lock's pause).
    const readPoint = held.describe ? { readPoint: held.describe } : {};
    return await withHeartbeat(() => ({ holding: result, heldSince, ...readPoint }), async (signal) => {
      await held.watch(signal);
      return result;
    });
  } finally {
    await held.release();
  }
}

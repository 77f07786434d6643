import { largerFirst, listed, TABLES_LISTED } from '../../plan/table-lists';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, FinishLoadResult, LoadPlanSummary } from '../../plan/migration-types';
import { chunkCount, groupTasks, keyChunks, pageChunks, wholeUnit, type LoadUnit } from '../../plan/load-chunks';
import { qualifiedTable } from '../../plan/sql-names';
import type { SourceEngine } from '../engine';
import { withHeartbeat } from '../heartbeat';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { ensureBookkeeping, readTableLoads } from '../target/bookkeeping';
import { loadModel, tablesByKey } from '../target/model';

/** Small tables share a task up to this size or count (a task's units commit together). */
const TASK_MAX_BYTES = 64 * 1024 * 1024;
const TASK_MAX_UNITS = 100;

/**
 * Plans the load once per run: which tables are split, where the chunk boundaries lie, which
 * units share a task. The plan is stored on the target, so a load resumed after a crash or an
 * operator retry meets exactly the chunks its ledger rows refer to. Returns counts only: the
 * workflow hands out task numbers, not the plan itself (a 10,000-table plan stays out of history).
 */
export async function planLoad({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<LoadPlanSummary> {
  const model = await loadModel(tgt, migration.runId);
  return withHeartbeat(() => ({ planning: model.tables.length }), async () => {
    const existing = await withConnection(tgt, 'read the load plan', async (c) => {
      await ensureBookkeeping(c);
      return summary(c, migration.runId);
    });
    if (existing.tasks > 0) return existing;

    const extents = await engine.extents(model.tables);
    const units: LoadUnit[] = [];
    for (const t of model.tables) {
      const extent = extents.get(t);
      const n = chunkCount(t, extent, plan.load.chunkRows);
      if (n <= 1 || !extent) units.push(wholeUnit(t, extent));
      else if (t.primaryKey?.columns?.length) units.push(...keyChunks(t, extent, await engine.sampleKeys(t, extent, n), n));
      else units.push(...pageChunks(t, extent, n));
    }
    const tasks = groupTasks(units, { maxBytes: TASK_MAX_BYTES, maxUnits: TASK_MAX_UNITS });
    return withConnection(tgt, 'store the load plan', async (c) => {
      await c.query('BEGIN');
      // Two attempts racing (a worker thought lost) must not store two plans: the first wins.
      await c.query('LOCK TABLE _dbferry.load_tasks IN SHARE ROW EXCLUSIVE MODE');
      if ((await summary(c, migration.runId)).tasks === 0) {
        await c.query(
          `INSERT INTO _dbferry.load_tasks (run_id, task, units, est_bytes)
           SELECT $1, t, u::jsonb, b FROM unnest($2::int[], $3::text[], $4::bigint[]) AS x(t, u, b)`,
          [migration.runId, tasks.map((t) => t.id), tasks.map((t) => JSON.stringify(t.units)), tasks.map((t) => t.estBytes)],
        );
      }
      await c.query('COMMIT');
      return summary(c, migration.runId);
    });
  });
}

async function summary(c: Client, runId: string): Promise<LoadPlanSummary> {
  const r = await c.query<{ tasks: number; units: number; chunked: number; bytes: string }>(
    `SELECT count(DISTINCT t.task)::int AS tasks, count(*)::int AS units,
            count(DISTINCT u->>'table') FILTER (WHERE (u->>'chunk')::int > 0)::int AS chunked,
            coalesce(sum((u->>'estBytes')::bigint), 0)::text AS bytes
       FROM _dbferry.load_tasks t, jsonb_array_elements(t.units) u WHERE t.run_id = $1`,
    [runId],
  );
  const row = r.rows[0]!;
  return { tasks: row.tasks, units: row.units, chunkedTables: row.chunked, estimatedBytes: row.bytes };
}

/**
 * Closes a load round: a table split into page ranges whose chunks came from different
 * snapshots (the holder died in between) may hold a row twice or miss one, because a row that
 * was updated can move between pages; without CDC, key ranges from two snapshots are a state
 * that never existed. Such a table is emptied with its ledger rows in one transaction and
 * loaded again.
 * Otherwise checks that every planned unit has its ledger row and reports what was loaded.
 */
export async function finishLoad({ plan, migration }: ActivityInput, tgt: PgEndpoint): Promise<FinishLoadResult> {
  // Without CDC, a table's chunks from two snapshots hold a state that never existed (a
  // transaction that changed rows in two chunks is half in it): reloaded under one. With CDC,
  // key ranges converge as CDC replays from the first snapshot; page ranges never do.
  const kinds = plan.mode === 'full-load' ? ['pages', 'keys'] : ['pages'];
  return withConnection(tgt, 'finish the load', async (c) => {
    const mixed = await c.query<{ table_key: string }>(
      `SELECT l.table_key FROM _dbferry.table_loads l
        WHERE l.run_id = $1 AND l.table_key IN (
          SELECT u->>'table' FROM _dbferry.load_tasks t, jsonb_array_elements(t.units) u
           WHERE t.run_id = $1 AND u->'range'->>'kind' = ANY($2))
        GROUP BY l.table_key HAVING count(DISTINCT l.snapshot) > 1 ORDER BY 1`,
      [migration.runId, kinds],
    );
    if (mixed.rows.length > 0) {
      const byKey = tablesByKey(await loadModel(tgt, migration.runId));
      const keys = mixed.rows.map((r) => r.table_key);
      const tables = keys.map((k) => byKey.get(k)!);
      await c.query('BEGIN');
      await c.query(`TRUNCATE ${tables.map((t) => `ONLY ${qualifiedTable(t.schema, t.name)}`).join(', ')}`);
      await c.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND table_key = ANY($2)', [migration.runId, keys]);
      await c.query('COMMIT');
      // Named for the message only (a chunked table at a time): at most TABLES_LISTED.
      return { reloadTables: keys.slice(0, TABLES_LISTED) };
    }
    const missing = await c.query<{ label: string }>(
      `SELECT u->>'table' || CASE WHEN (u->>'chunk')::int > 0 THEN ' #' || (u->>'chunk') ELSE '' END AS label
         FROM _dbferry.load_tasks t, jsonb_array_elements(t.units) u
        WHERE t.run_id = $1 AND NOT EXISTS (
          SELECT 1 FROM _dbferry.table_loads l WHERE l.run_id = $1 AND l.table_key = u->>'table' AND l.chunk = (u->>'chunk')::int)
        LIMIT 10`,
      [migration.runId],
    );
    if (missing.rows.length > 0) {
      throw ApplicationFailure.create({
        type: FailureType.DatabaseError,
        message: `${tgt.description}: the load finished but the ledger has no row for ${missing.rows.map((r) => r.label).join(', ')}`,
        details: [{ table: missing.rows[0]!.label, hint: 'run dbferry retry: the load resumes and copies what is missing' }],
      });
    }
    const loads = await readTableLoads(c, migration.runId);
    const snaps = await c.query<{ generation: number; snapshot: string; position: string; created_at: Date; detail: string | null }>(
      'SELECT generation, snapshot, position, created_at, detail FROM _dbferry.snapshots WHERE run_id = $1 ORDER BY generation',
      [migration.runId],
    );
    const first = snaps.rows[0];
    const readPoint = describeReadPoints(snaps.rows);
    return {
      report: {
        snapshot: first?.snapshot ?? '',
        position: first?.position ?? '',
        ...(readPoint ? { readPoint } : {}),
        snapshots: snaps.rows.map((s) => ({ generation: s.generation, snapshot: s.snapshot, position: s.position, at: new Date(s.created_at).toISOString() })),
        // Tables whose values were changed on the way first (the report says what), then the largest.
        tables: listed(
          [...loads.values()].map((l) => ({ table: l.table_key, rows: l.rows, bytes: Number(l.bytes), chunks: Number(l.chunks), ms: Number(l.ms), ...(l.converted ? { converted: l.converted } : {}) })),
          (a, b) => Number(b.converted !== undefined) - Number(a.converted !== undefined) || largerFirst((t: { bytes: number }) => t.bytes)(a, b),
        ).sort((a, b) => a.table.localeCompare(b.table)),
        totals: {
          tables: loads.size,
          rows: [...loads.values()].reduce((n, l) => n + BigInt(l.rows), 0n).toString(),
          bytes: [...loads.values()].reduce((n, l) => n + Number(l.bytes), 0),
        },
      },
    };
  }).catch((err) => {
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: 'finishing the load' });
  });
}

/**
 * How the load's read points were taken, in words, where the engine said more than the snapshot
 * (MySQL: one read point under the global read lock, or each task in its own snapshot without
 * RELOAD); undefined for PostgreSQL, whose loaders all import the exported snapshot. A loader
 * never reads outside the read point it joined, so the holders' words are the whole story.
 */
function describeReadPoints(snaps: Array<{ detail: string | null }>): string | undefined {
  const details = [...new Set(snaps.map((s) => s.detail).filter((d): d is string => d !== null))];
  return details.length > 0 ? details.join('; then ') : undefined;
}

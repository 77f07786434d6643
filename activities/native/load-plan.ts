import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, FinishLoadResult, LoadPlanSummary } from '../../plan/migration-types';
import type { TableModel } from '../../plan/schema-model';
import { withHeartbeat } from '../heartbeat';
import { ensureBookkeeping, readTableLoads } from '../target/bookkeeping';
import { chunkCount, groupTasks, keyChunks, pageChunks, wholeUnit, type LoadUnit, type TableExtent } from '../../plan/load-chunks';
import { resolveEndpoint, withConnection } from '../pg/connection';
import { qualifiedTable, quoteIdent } from '../target/ddl';
import { toFailure } from '../pg/errors';
import { loadModel, tablesByKey } from '../target/model';

/** Small tables share a task up to this size or count (a task's units commit together). */
const TASK_MAX_BYTES = 64 * 1024 * 1024;
const TASK_MAX_UNITS = 100;
/** Sampled heap pages per chunk when drawing key-range boundaries. */
const SAMPLE_PAGES_PER_CHUNK = 30;

/**
 * Plans the load once per run: which tables are split, where the chunk boundaries lie, which
 * units share a task. The plan is stored on the target, so a load resumed after a crash or an
 * operator retry meets exactly the chunks its ledger rows refer to. Returns counts only: the
 * workflow hands out task numbers, not the plan itself (a 10,000-table plan stays out of history).
 */
export async function planLoadPostgres({ plan, migration }: ActivityInput): Promise<LoadPlanSummary> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  return withHeartbeat(() => ({ planning: model.tables.length }), async () => {
    const existing = await withConnection(tgt, 'read the load plan', async (c) => {
      await ensureBookkeeping(c);
      return summary(c, migration.runId);
    });
    if (existing.tasks > 0) return existing;

    const units = await withConnection(src, 'plan the load', async (c) => {
      const extents = await tableExtents(c, model.tables);
      const out: LoadUnit[] = [];
      for (const t of model.tables) {
        const extent = extents.get(t);
        const n = chunkCount(t, extent, plan.load.chunkRows);
        if (n <= 1 || !extent) out.push(wholeUnit(t, extent));
        else if (t.primaryKey?.columns?.length) out.push(...keyChunks(t, extent, await sampleKeys(c, t, extent, n), n));
        else out.push(...pageChunks(t, extent, n));
      }
      return out;
    });
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

/** Heap size and row estimate of each table from the source catalog. */
async function tableExtents(c: Client, tables: TableModel[]): Promise<Map<TableModel, TableExtent>> {
  const r = await c.query<{ i: string; pages: string; reltuples: number; bytes: string }>(
    `SELECT i::text, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages, c.reltuples,
            pg_total_relation_size(c.oid)::text AS bytes
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(s, t, i)
       JOIN pg_namespace n ON n.nspname = x.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.t`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(
    r.rows.map((row) => [tables[Number(row.i) - 1]!, { pages: Number(row.pages), reltuples: Number(row.reltuples), bytes: Number(row.bytes) }]),
  );
}

/**
 * Boundaries for key ranges, as a sorted list of keys (each a tuple of the columns' text forms)
 * whose n-quantiles become the boundaries. A single integer key (serial, identity: the common
 * case) is cut evenly between its minimum and maximum, read from its index. Any other key is
 * sampled: TABLESAMPLE SYSTEM reads whole pages, so enough pages (about SAMPLE_PAGES_PER_CHUNK a
 * chunk) are read that keys clustered on a page do not skew the quantiles.
 */
async function sampleKeys(c: Client, t: TableModel, extent: TableExtent, n: number): Promise<string[][]> {
  const keyCols = t.primaryKey!.columns!;
  const name = qualifiedTable(t.schema, t.name);
  const type = t.columns.find((col) => col.name === keyCols[0])?.type;
  if (keyCols.length === 1 && (type === 'bigint' || type === 'integer' || type === 'smallint')) {
    const col = quoteIdent(keyCols[0]!);
    const r = await c.query<{ lo: string | null; hi: string | null }>(`SELECT min(${col})::text AS lo, max(${col})::text AS hi FROM ONLY ${name}`);
    const { lo, hi } = r.rows[0]!;
    if (lo === null || hi === null) return [];
    const [a, b] = [BigInt(lo), BigInt(hi)];
    return Array.from({ length: n }, (_, i) => [(a + ((b - a + 1n) * BigInt(i)) / BigInt(n)).toString()]);
  }
  const cols = keyCols.map((col) => `x.${quoteIdent(col)}`);
  const percent = Math.min(100, Math.max(0.0001, (100 * n * SAMPLE_PAGES_PER_CHUNK) / Math.max(extent.pages, 1)));
  // Output columns are aliased: ORDER BY a bare name would sort by the text output column.
  const r = await c.query({
    text: `SELECT ${cols.map((col, i) => `${col}::text AS k${i}`).join(', ')} FROM ONLY ${name} AS x
             TABLESAMPLE SYSTEM (${percent.toFixed(6)}) ORDER BY ${cols.join(', ')}`,
    rowMode: 'array',
  });
  return r.rows as string[][];
}

/**
 * Closes a load round: a table split into page ranges whose chunks came from different
 * snapshots (the holder died in between) may hold a row twice or miss one, because a row that
 * was updated can move between pages; such a table is emptied with its ledger rows in one
 * transaction and loaded again. Key ranges do not have the problem for an unchanged key.
 * Otherwise checks that every planned unit has its ledger row and reports what was loaded.
 */
export async function finishLoadPostgres({ plan, migration }: ActivityInput): Promise<FinishLoadResult> {
  const tgt = await resolveEndpoint(plan, 'target');
  return withConnection(tgt, 'finish the load', async (c) => {
    const mixed = await c.query<{ table_key: string }>(
      `SELECT l.table_key FROM _dbferry.table_loads l
        WHERE l.run_id = $1 AND l.table_key IN (
          SELECT u->>'table' FROM _dbferry.load_tasks t, jsonb_array_elements(t.units) u
           WHERE t.run_id = $1 AND u->'range'->>'kind' = 'pages')
        GROUP BY l.table_key HAVING count(DISTINCT l.snapshot) > 1 ORDER BY 1`,
      [migration.runId],
    );
    if (mixed.rows.length > 0) {
      const byKey = tablesByKey(await loadModel(tgt, migration.runId));
      const keys = mixed.rows.map((r) => r.table_key);
      const tables = keys.map((k) => byKey.get(k)!);
      await c.query('BEGIN');
      await c.query(`TRUNCATE ${tables.map((t) => qualifiedTable(t.schema, t.name)).join(', ')}`);
      await c.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND table_key = ANY($2)', [migration.runId, keys]);
      await c.query('COMMIT');
      return { reloadTables: keys };
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
    const snaps = await c.query<{ generation: number; snapshot: string; lsn: string; created_at: Date }>(
      'SELECT generation, snapshot, lsn::text AS lsn, created_at FROM _dbferry.snapshots WHERE run_id = $1 ORDER BY generation',
      [migration.runId],
    );
    const first = snaps.rows[0];
    return {
      report: {
        snapshot: first?.snapshot ?? '',
        lsn: first?.lsn ?? '',
        snapshots: snaps.rows.map((s) => ({ generation: s.generation, snapshot: s.snapshot, lsn: s.lsn, at: new Date(s.created_at).toISOString() })),
        tables: [...loads.values()]
          .map((l) => ({ table: l.table_key, rows: l.rows, bytes: Number(l.bytes), chunks: Number(l.chunks), ms: Number(l.ms) }))
          .sort((a, b) => a.table.localeCompare(b.table)),
      },
    };
  }).catch((err) => {
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: 'finishing the load' });
  });
}

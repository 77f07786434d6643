import type { Client } from 'pg';
import type { SchemaModel } from '../../plan/schema-model';
import type { TableValidationResult } from '../../plan/migration-types';

/**
 * dbferry's own bookkeeping lives on the target in schema `_dbferry`, written in the same
 * transactions as the data it describes, so a retried step knows exactly what is done.
 */
export const BOOKKEEPING_DDL = `
CREATE SCHEMA IF NOT EXISTS _dbferry;
CREATE TABLE IF NOT EXISTS _dbferry.migrations (
  run_id      text PRIMARY KEY,
  name        text NOT NULL,
  model       jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- A large schema is created in several transactions: how many DDL statements have
  -- committed so far; NULL once all of them have.
  statements_done int,
  -- Bumped when the operator takes a table out of the migration (the model loses it): workers
  -- holding the model in memory read it again.
  revision    int NOT NULL DEFAULT 0,
  left_out    text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS _dbferry.table_loads (
  run_id           text NOT NULL,
  table_key        text NOT NULL,
  chunk            int NOT NULL DEFAULT 0,
  rows             bigint NOT NULL,
  bytes            bigint NOT NULL,
  source_checksum  numeric,
  checksum_method  text,
  snapshot         text NOT NULL,
  ms               bigint NOT NULL DEFAULT 0,
  worker           text,
  loaded_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, table_key, chunk)
);
-- The load's work, planned once per run so a resumed load meets the same chunk boundaries.
CREATE TABLE IF NOT EXISTS _dbferry.load_tasks (
  run_id     text NOT NULL,
  task       int NOT NULL,
  units      jsonb NOT NULL,
  est_bytes  bigint NOT NULL,
  PRIMARY KEY (run_id, task)
);
-- Every read point (snapshot) the load ran under (a new generation when its holder died) and
-- the source position it belongs to (engine:position text, ordered by the source engine): CDC
-- applies idempotently until it has passed the latest one. "slot" is set on the generation
-- whose position CDC starts from.
CREATE TABLE IF NOT EXISTS _dbferry.snapshots (
  run_id      text NOT NULL,
  generation  int NOT NULL,
  snapshot    text NOT NULL,
  position    text NOT NULL,
  slot        text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, generation)
);
-- CDC: the last source transaction applied, written in the same target transaction as its
-- changes. A restarted applier resumes after commit_position; the source is never told more
-- than end_position is durable.
CREATE TABLE IF NOT EXISTS _dbferry.cdc_progress (
  run_id               text PRIMARY KEY,
  -- What CDC holds on the source (e.g. a replication slot and a publication), for messages.
  source_objects       text,
  commit_position      text NOT NULL,
  end_position         text NOT NULL,
  transactions         bigint NOT NULL DEFAULT 0,
  changes              bigint NOT NULL DEFAULT 0,
  -- Source commit time of the last applied transaction that changed a table, and that table:
  -- cutover refuses while changes still arrive.
  last_change_at       timestamptz,
  last_change_table    text,
  -- Set when the cutover marker has been applied: the applier stops there.
  marker_position      text,
  updated_at           timestamptz NOT NULL DEFAULT now()
);
-- Applied changes per table, counted in the same transactions (so they are exact too).
CREATE TABLE IF NOT EXISTS _dbferry.cdc_stats (
  run_id     text NOT NULL,
  table_key  text NOT NULL,
  inserts    bigint NOT NULL DEFAULT 0,
  updates    bigint NOT NULL DEFAULT 0,
  deletes    bigint NOT NULL DEFAULT 0,
  truncates  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, table_key)
);
-- Every table's result of the run's latest validation (the step's own result names at most
-- 200 tables: plan/table-lists.ts); "result" is TableValidationResult as JSON.
CREATE TABLE IF NOT EXISTS _dbferry.table_validations (
  run_id        text NOT NULL,
  table_key     text NOT NULL,
  equal         boolean NOT NULL,
  result        jsonb NOT NULL,
  validated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, table_key)
);
-- Targets prepared by an earlier version.
ALTER TABLE _dbferry.migrations ADD COLUMN IF NOT EXISTS statements_done int;
ALTER TABLE _dbferry.table_loads ADD COLUMN IF NOT EXISTS ms bigint NOT NULL DEFAULT 0;
ALTER TABLE _dbferry.table_loads ADD COLUMN IF NOT EXISTS checksum_method text;
ALTER TABLE _dbferry.table_loads ADD COLUMN IF NOT EXISTS worker text;
-- Before positions carried their engine (a migration started by an earlier version and still
-- running or paused): PostgreSQL LSNs become postgres:<lsn> text.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '_dbferry.snapshots'::regclass AND attname = 'lsn' AND NOT attisdropped) THEN
    ALTER TABLE _dbferry.snapshots RENAME COLUMN lsn TO position;
    ALTER TABLE _dbferry.snapshots ALTER COLUMN position TYPE text USING 'postgres:' || position::text;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '_dbferry.cdc_progress'::regclass AND attname = 'commit_lsn' AND NOT attisdropped) THEN
    ALTER TABLE _dbferry.cdc_progress RENAME COLUMN commit_lsn TO commit_position;
    ALTER TABLE _dbferry.cdc_progress RENAME COLUMN end_lsn TO end_position;
    ALTER TABLE _dbferry.cdc_progress RENAME COLUMN marker_lsn TO marker_position;
    ALTER TABLE _dbferry.cdc_progress
      ALTER COLUMN commit_position TYPE text USING 'postgres:' || commit_position::text,
      ALTER COLUMN end_position TYPE text USING 'postgres:' || end_position::text,
      ALTER COLUMN marker_position TYPE text USING 'postgres:' || marker_position::text,
      ALTER COLUMN slot DROP NOT NULL,
      ALTER COLUMN publication DROP NOT NULL,
      ADD COLUMN IF NOT EXISTS source_objects text;
    UPDATE _dbferry.cdc_progress SET source_objects = format('replication slot %s, publication %s', slot, publication);
  END IF;
END $$;
ALTER TABLE _dbferry.migrations ADD COLUMN IF NOT EXISTS revision int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS left_out text[] NOT NULL DEFAULT '{}';
-- Values another engine's rows could not carry as they were (MySQL zero dates written as NULL).
ALTER TABLE _dbferry.table_loads ADD COLUMN IF NOT EXISTS converted text;
-- Where each unit was read on the source (a MySQL loader outside the shared read point reads
-- in a snapshot of its own), and how each read point was taken, in words.
ALTER TABLE _dbferry.table_loads ADD COLUMN IF NOT EXISTS position text;
ALTER TABLE _dbferry.snapshots ADD COLUMN IF NOT EXISTS detail text;
-- The task queue of the holder's worker, when only loaders there can join its read point.
ALTER TABLE _dbferry.snapshots ADD COLUMN IF NOT EXISTS worker_queue text;
-- Cutover of a source whose stream has no room for a marker (MySQL): the position the applier
-- stops at; and where an idle applier has read up to (transactions of other tables only).
ALTER TABLE _dbferry.cdc_progress ADD COLUMN IF NOT EXISTS stop_position text;`;

export async function ensureBookkeeping(target: Client): Promise<void> {
  // The newest change (cutover's stop position): a target prepared by an earlier version gets what it lacks.
  const { rows } = await target.query(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('_dbferry.cdc_progress') AND attname = 'stop_position' AND NOT attisdropped)
        AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('_dbferry.migrations') AND attname = 'left_out' AND NOT attisdropped)
        AND to_regclass('_dbferry.cdc_stats') IS NOT NULL AND to_regclass('_dbferry.table_validations') IS NOT NULL AS present`,
  );
  if (!rows[0]?.present) await target.query(BOOKKEEPING_DDL);
}

/** The schema model this migration created on the target, or undefined before create-tables. */
export async function readModel(target: Client, runId: string): Promise<SchemaModel | undefined> {
  return (await readModelRecord(target, runId))?.model;
}

/** The model and, while a large schema is still being created, how many statements are done. */
export async function readModelRecord(
  target: Client,
  runId: string,
): Promise<{ model: SchemaModel; statementsDone: number | null; revision: number } | undefined> {
  const { rows } = await target.query("SELECT to_regclass('_dbferry.migrations') IS NOT NULL AS present");
  if (!rows[0]?.present) return undefined;
  await ensureBookkeeping(target);
  const r = await target.query<{ model: SchemaModel; statements_done: number | null; revision: number }>(
    'SELECT model, statements_done, revision FROM _dbferry.migrations WHERE run_id = $1',
    [runId],
  );
  const row = r.rows[0];
  return row ? { model: row.model, statementsDone: row.statements_done, revision: row.revision } : undefined;
}

/** The revision of a run's model (see `_dbferry.migrations.revision`); -1 when there is none. */
export async function modelRevision(target: Client, runId: string): Promise<number> {
  const r = await target.query<{ revision: number }>('SELECT revision FROM _dbferry.migrations WHERE run_id = $1', [runId]);
  return r.rows[0]?.revision ?? -1;
}

export interface TableLoadRow {
  table_key: string;
  rows: string;
  bytes: string;
  source_checksum: string | null;
  checksum_method: string | null;
  snapshot: string;
  chunks: string;
  ms: string;
  converted: string | null;
}

export async function readTableLoads(target: Client, runId: string): Promise<Map<string, TableLoadRow>> {
  // Counts and checksums are sums, so a chunked table's are the sums of its chunks'.
  const r = await target.query<TableLoadRow>(
    `SELECT table_key, sum(rows)::text AS rows, sum(bytes)::text AS bytes,
            CASE WHEN bool_and(source_checksum IS NOT NULL) THEN sum(source_checksum)::text END AS source_checksum,
            -- One method per table (it follows from the column types); two would not add up.
            CASE WHEN count(DISTINCT checksum_method) <= 1 THEN min(checksum_method) ELSE 'mixed' END AS checksum_method,
            min(snapshot) AS snapshot, count(*)::text AS chunks, sum(ms)::text AS ms,
            string_agg(converted, '; ' ORDER BY chunk) AS converted
       FROM _dbferry.table_loads WHERE run_id = $1 GROUP BY table_key`,
    [runId],
  );
  return new Map(r.rows.map((row) => [row.table_key, row]));
}

/** Records every table's validation result of this run (replacing an earlier validation's). */
export async function recordValidations(target: Client, runId: string, results: TableValidationResult[]): Promise<void> {
  await target.query('BEGIN');
  try {
    await target.query('DELETE FROM _dbferry.table_validations WHERE run_id = $1', [runId]);
    // In slices: one statement's parameters stay small whatever the number of tables.
    for (let i = 0; i < results.length; i += 5_000) {
      await target.query(
        `INSERT INTO _dbferry.table_validations (run_id, table_key, equal, result)
         SELECT $1, r->>'table', (r->>'equal')::boolean, r FROM jsonb_array_elements($2::jsonb) r`,
        [runId, JSON.stringify(results.slice(i, i + 5_000))],
      );
    }
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { FailureType } from '../../plan/failure-types';
import { unitLabel, type LoadUnit } from '../../plan/load-chunks';
import type { ActivityInput, LoadTaskInput, LoadTaskResult } from '../../plan/migration-types';
import { sourceColumns, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { ReadPointGone, type SourceEngine, type SourceReader } from '../engine';
import { withHeartbeat } from '../heartbeat';
import { loadTaskDone, tableKeysDeferred, unitLoaded } from '../telemetry';
import { ownTaskQueue } from '../identity';
import { closeQuietly, connect, withConnection, type PgEndpoint } from '../pg/connection';
import { ensureBookkeeping } from '../target/bookkeeping';
import { toFailure } from '../pg/errors';
import { claimTask, readTask, recordUnit } from '../target/ledger';
import { loadModel, tablesByKey } from '../target/model';
import { buildLoadedTables } from '../target/build-indexes';
import { readsSourceAtValidation } from './validate';
import { copyFormat, CopyRowHash } from '../pg/copy-hash';

/** How long a loader waits for a live snapshot (a dead holder is restarted by Temporal). */
const SNAPSHOT_WAIT_MS = 10 * 60_000;

interface Progress {
  task: number;
  units: number;
  unitsDone: number;
  current?: string;
  table?: string;
  bytes: number;
  /** The unit being copied: bytes so far, the plan's estimate and its start (for `dbferry watch`). */
  unitBytes?: number;
  unitEstBytes?: number;
  unitStartedAt?: string;
  generation?: number;
  waitingForSnapshot?: boolean;
  /** The loaded table whose keys and indexes are being built (pipelined load). */
  building?: string;
}

/**
 * Loads one task of the stored load plan: imports the current snapshot on the source, then
 * copies the task's units into the target in ONE transaction that also writes their ledger
 * rows. A task is therefore loaded exactly once: a retry (on any worker, after any crash)
 * finds its ledger rows and returns, or finds none and finds the target untouched.
 */
export async function loadTask({ plan, migration, task }: LoadTaskInput, engine: SourceEngine, tgt: PgEndpoint): Promise<LoadTaskResult> {
  const model = await loadModel(tgt, migration.runId);
  const tables = tablesByKey(model);
  const progress: Progress = { task, units: 0, unitsDone: 0, bytes: 0 };
  return withHeartbeat(() => ({ ...progress }), async (signal) => {
    const target = await connect(tgt, { purpose: 'load' });
    let source: SourceReader | undefined;
    try {
      const units = await readTask(target, migration.runId, task);
      progress.units = units.length;
      await target.query('BEGIN');
      if (await claimTask(target, migration.runId, task, units)) {
        await target.query('COMMIT');
        loadTaskDone(task, units.length, 0n, true);
        // The attempt that loaded it may have died while building its tables' keys.
        if (plan.load.pipelined) await buildCompleteTables(target, migration.runId, model, units, progress);
        return { task, alreadyLoaded: true, units: units.length, rows: '0', bytes: 0 };
      }
      const snap = await joinNewestReadPoint(engine, target, migration.runId, progress, signal);
      source = snap.reader;
      progress.generation = snap.generation;
      let rows = 0n;
      for (const unit of units) {
        const table = tables.get(unit.table);
        if (!table) throw missingTable(tgt, unit.table);
        const started = Date.now();
        const bytesBefore = progress.bytes;
        const n = await copyUnit({ source, target }, table, unit, {
          snapshot: source.readPoint?.token ?? snap.snapshot,
          position: source.readPoint?.position ?? snap.position,
          migration: migration.runId,
          checksums: plan.validate.checksums && !readsSourceAtValidation(plan),
          readSourceOnce: plan.validate.readSourceOnce,
          source: engine.description,
          progress,
          signal,
        });
        rows += BigInt(n);
        progress.unitsDone++;
        unitLoaded({ table: unit.table, label: progress.current ?? unit.table, rows: Number(n), bytes: progress.bytes - bytesBefore, ms: Date.now() - started });
      }
      await target.query('COMMIT');
      loadTaskDone(task, units.length, rows, false);
      await source.close();
      source = undefined;
      if (plan.load.pipelined) await buildCompleteTables(target, migration.runId, model, units, progress);
      return { task, alreadyLoaded: false, units: units.length, rows: rows.toString(), bytes: progress.bytes, generation: snap.generation };
    } catch (err) {
      // A target left mid-COPY may not answer: bounded, and the connection is closed anyway.
      await Promise.race([target.query('ROLLBACK').catch(() => undefined), sleep(5_000, undefined, { ref: false })]);
      if (err instanceof ApplicationFailure) throw err;
      const ctx = { table: progress.table, doing: progress.current ? `copying ${progress.current}` : `loading task ${task}` };
      if ((err as { dbferrySide?: string }).dbferrySide === 'source') throw engine.failure(err, ctx);
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, ...ctx });
    } finally {
      await Promise.all([source?.close(), closeQuietly(target)]);
    }
  });
}

/**
 * Pipelined load (`load.pipelined`): builds the keys and indexes of each table this task
 * completed (a whole table, or the last of its chunks to commit) on the loader's connection,
 * while other tasks copy.
 */
async function buildCompleteTables(target: Client, runId: string, model: SchemaModel, units: LoadUnit[], progress: Progress): Promise<void> {
  const chunked = [...new Map(units.filter((u) => u.chunk > 0).map((u) => [u.table, u.of])).entries()];
  const complete = new Set(units.filter((u) => u.chunk === 0).map((u) => u.table));
  if (chunked.length > 0) {
    try {
      const r = await target.query<{ table_key: string }>(
        `SELECT l.table_key FROM _dbferry.table_loads l JOIN unnest($2::text[], $3::int[]) AS u(t, n) ON l.table_key = u.t
          WHERE l.run_id = $1 AND l.chunk > 0 GROUP BY l.table_key, u.n HAVING count(*) = u.n`,
        [runId, chunked.map(([t]) => t), chunked.map(([, n]) => n)],
      );
      for (const row of r.rows) complete.add(row.table_key);
    } catch (err) {
      // Best effort, as the builds are: the keys-and-indexes step builds what is left.
      tableKeysDeferred(chunked[0]![0], 'reading which chunked tables are complete', err);
    }
  }
  progress.current = undefined;
  await buildLoadedTables(target, runId, model, [...complete], (key) => (progress.building = key));
}

/**
 * A reader inside the newest read point of this run. A read point whose holder died cannot be
 * joined any more; the loader then waits for the holder's replacement to record the next
 * generation (heartbeating meanwhile), rather than failing the task.
 */
async function joinNewestReadPoint(
  engine: SourceEngine,
  target: Client,
  runId: string,
  progress: Progress,
  signal?: AbortSignal,
): Promise<{ reader: SourceReader; snapshot: string; position: string; generation: number }> {
  const deadline = Date.now() + SNAPSHOT_WAIT_MS;
  let deadGeneration = 0;
  for (;;) {
    const r = await target.query<{ generation: number; snapshot: string; position: string; worker_queue: string | null }>(
      'SELECT generation, snapshot, position, worker_queue FROM _dbferry.snapshots WHERE run_id = $1 ORDER BY generation DESC LIMIT 1',
      [runId],
    );
    const latest = r.rows[0];
    if (latest?.worker_queue && latest.worker_queue !== ownTaskQueue()) {
      throw ApplicationFailure.create({
        type: FailureType.ReadPointElsewhere,
        nonRetryable: true,
        message: `the read point of generation ${latest.generation} is held on another worker (task queue ${latest.worker_queue})`,
      });
    }
    if (latest && latest.generation > deadGeneration) {
      try {
        const reader = await engine.joinReadPoint(latest.snapshot);
        progress.waitingForSnapshot = false;
        return { reader, snapshot: latest.snapshot, position: latest.position, generation: latest.generation };
      } catch (err) {
        if (!(err instanceof ReadPointGone)) throw err;
        deadGeneration = latest.generation;
      }
    }
    if (Date.now() > deadline) {
      throw ApplicationFailure.create({
        type: FailureType.Transient,
        message: `${engine.description}: no live load snapshot for ${SNAPSHOT_WAIT_MS / 60_000} minutes (is the snapshot holder activity running?)`,
      });
    }
    progress.waitingForSnapshot = true;
    await sleep(1_000, undefined, { signal }).catch(() => undefined);
    if (signal?.aborted) throw ApplicationFailure.create({ type: FailureType.Transient, message: 'load task cancelled' });
  }
}

interface CopyContext {
  /** The snapshot and position the unit is read in (the ledger's). */
  snapshot: string;
  position: string;
  migration: string;
  checksums: boolean;
  /** Sum the rows on the COPY stream (copy-hash) rather than read the source again. */
  readSourceOnce: boolean;
  /** The source's description, for messages. */
  source: string;
  progress: Progress;
  signal?: AbortSignal;
}

/** Copies one unit inside the caller's target transaction and writes its ledger row; returns its row count. */
async function copyUnit(lane: { source: SourceReader; target: Client }, t: TableModel, unit: LoadUnit, ctx: CopyContext): Promise<string> {
  const label = unitLabel(unit);
  const started = Date.now();
  const name = qualifiedTable(t.schema, t.name);
  const cols = sourceColumns(t);
  const colList = cols.map((c) => quoteIdent(c.name)).join(', ');
  const format = copyFormat(t);
  const { source, target } = lane;
  ctx.progress.current = label;
  ctx.progress.table = unit.table;
  ctx.progress.unitBytes = 0;
  ctx.progress.unitEstBytes = unit.estBytes;
  ctx.progress.unitStartedAt = new Date(started).toISOString();
  let bytes = 0;
  // Read once (validate.readSourceOnce): the rows are summed as they pass, where the source
  // streams PostgreSQL's own COPY form of them. Not the default: measured on dataset A, the
  // target's COPY out at validation costs more than the source's second scan saves. Generated
  // columns are not copied (the target computes them), so a table with any is summed on the
  // source by a query that includes them, as validation does on the target.
  const hash = ctx.checksums && ctx.readSourceOnce && source.copyHashable && cols.length > 0 && !t.partitioned && !t.columns.some((c) => c.generated !== undefined) ? new CopyRowHash(format) : undefined;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash?.update(chunk);
      bytes += chunk.length;
      ctx.progress.bytes += chunk.length;
      ctx.progress.unitBytes = bytes;
      cb(null, chunk);
    },
  });

  // A whole table: TRUNCATE in the same transaction makes its load all-or-nothing and lets COPY
  // FREEZE skip later vacuum work. A chunk adds to the rows of the table's other chunks.
  const whole = unit.chunk === 0;
  // ONLY: an inheritance parent's or a partitioned table's descendants are units of their own.
  if (whole && !t.partitioned) await target.query(`TRUNCATE ONLY ${name}`);
  let rows = '0';
  let converted: string | undefined;
  if (t.partitioned) {
    // COPY cannot read a partitioned parent, and its rows are loaded with its partitions.
  } else if (cols.length > 0) {
    // The source first: it may refuse the read (a table rewritten since the read point).
    const out = await source.copyOut(t, unit.range, format).catch((e: unknown) => {
      markSide(e, 'source');
      throw e;
    });
    const sink = target.query(copyFrom(`COPY ${name} (${colList}) FROM STDIN WITH (FORMAT ${format}${whole ? ', FREEZE' : ''})`));
    // The pipeline hands the first error to the other stream too: whichever fails first marks it.
    out.once('error', (e) => markSide(e, 'source'));
    sink.once('error', (e) => markSide(e, 'target'));
    await pipeline(out, meter, sink, ctx.signal ? { signal: ctx.signal } : {});
    rows = String(sink.rowCount ?? 0);
    converted = out.conversions?.();
  } else {
    // A table without columns: only its row count travels.
    const n = (await source.checksum(t, unit.range, false)).rows;
    await target.query(`INSERT INTO ${name} SELECT FROM generate_series(1, $1::bigint)`, [n]);
    rows = n;
  }
  let checksum: string | null = null;
  let method: string | null = null;
  if (hash) {
    const summed = hash.finish();
    if (summed.rows !== rows) throw rowsDisagree(ctx, label, unit.table, `${summed.rows} rows in the COPY stream but the target took ${rows}`);
    checksum = summed.checksum;
    method = 'copy-hash';
  } else if (ctx.checksums) {
    // Same read point as the COPY: validation compares against exactly what was read. After
    // the copy, not beside it: measured on 2 cores (MySQL, dataset B), a checksum running on a
    // second snapshot during the copy made the largest table 74 s → 121 s (the scans contend).
    const r = await source.checksum(t, unit.range, true);
    checksum = r.checksum ?? null;
    method = r.method;
    if (r.rows !== rows) throw rowsDisagree(ctx, label, unit.table, `returned ${rows} rows to COPY but ${r.rows} to the checksum in the same snapshot`);
  }
  await recordUnit(target, ctx.migration, unit, { rows, bytes, checksum, method, snapshot: ctx.snapshot, position: ctx.position, ms: Date.now() - started, converted });
  return rows;
}

function rowsDisagree(ctx: CopyContext, label: string, table: string, what: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.DatabaseError, message: `${ctx.source}: ${label} ${what}`, details: [{ table }] });
}

function missingTable(tgt: PgEndpoint, key: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.DatabaseError,
    nonRetryable: true,
    message: `${tgt.description}: the load plan names ${key}, which is not in this run's schema model`,
    details: [{ table: key }],
  });
}

/** Marks which endpoint an error came from, so the failure names the right one (unmarked: the target). */
function markSide(err: unknown, side: 'source' | 'target'): void {
  if (err && typeof err === 'object' && !('dbferrySide' in err)) (err as { dbferrySide?: string }).dbferrySide = side;
}

/**
 * The task queue loaders must run on: the worker of the newest read point's holder when only
 * loaders there can join it (MySQL), else none (any worker). Waits for the holder to record
 * its read point.
 */
export async function readPointQueue({ migration }: ActivityInput, tgt: PgEndpoint): Promise<{ taskQueue?: string }> {
  return withHeartbeat(() => ({ waitingForSnapshot: true }), async (signal) => {
    const deadline = Date.now() + SNAPSHOT_WAIT_MS;
    for (;;) {
      const r = await withConnection(tgt, 'read the load snapshot', async (c) => {
        await ensureBookkeeping(c);
        return c.query<{ worker_queue: string | null }>('SELECT worker_queue FROM _dbferry.snapshots WHERE run_id = $1 ORDER BY generation DESC LIMIT 1', [migration.runId]);
      });
      const row = r.rows[0];
      if (row) return row.worker_queue ? { taskQueue: row.worker_queue } : {};
      if (Date.now() > deadline || signal?.aborted) {
        throw ApplicationFailure.create({ type: FailureType.Transient, message: `no load snapshot recorded for ${SNAPSHOT_WAIT_MS / 60_000} minutes (is the snapshot holder activity running?)` });
      }
      await sleep(500, undefined, { signal }).catch(() => undefined);
    }
  });
}

import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import { escapeIdentifier, type Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, FullLoadResult, TableLoadResult } from '../../plan/migration-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { inParallel, withHeartbeat } from '../heartbeat';
import { loadModel } from './model';
import { checksumQuery } from './checksum';
import { closeQuietly, connect, resolveEndpoint, type PgEndpoint } from './connection';
import { qualifiedTable } from './ddl';
import { toFailure } from './errors';

interface Progress {
  tablesTotal: number;
  tablesDone: number;
  bytes: number;
  running: Record<string, number>;
}

/**
 * Copies every selected table inside one exported snapshot of the source, `load.parallel`
 * tables at once, streaming COPY with back-pressure (memory stays bounded whatever the size).
 * Each table is truncated, copied and recorded in _dbferry.table_loads in one target
 * transaction, so a table is either fully loaded under this snapshot or not at all. A retry
 * takes a fresh snapshot and reloads every table, so all tables stay from one point in time.
 */
export async function fullLoadPostgres({ plan, migration }: ActivityInput): Promise<FullLoadResult> {
  const started = Date.now();
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  const tables = [...model.tables].sort((a, b) => Number(b.estimatedBytes) - Number(a.estimatedBytes));
  const progress: Progress = { tablesTotal: tables.length, tablesDone: 0, bytes: 0, running: {} };

  return withHeartbeat(() => ({ ...progress }), async (signal) => {
    const holder = await connect(src, { purpose: 'snapshot' });
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await holder.query<{ snapshot: string; lsn: string }>(
        'SELECT pg_export_snapshot() AS snapshot, pg_current_wal_lsn()::text AS lsn',
      );
      const { snapshot, lsn } = rows[0]!;
      const results: TableLoadResult[] = [];
      const lanes: Array<{ source: Client; target: Client } | undefined> = [];
      try {
        await inParallel(tables, plan.load.parallel, async (table, lane) => {
          lanes[lane] ??= await openLane(src, tgt, snapshot);
          const r = await copyTable(lanes[lane]!, table, { snapshot, migration: migration.runId, checksums: plan.validate.checksums, src, tgt, progress, signal });
          results.push(r);
        });
      } finally {
        // No COMMIT on the source lanes: they are read-only, and one left mid-COPY by a failed
        // table would never answer it. Closing ends the transaction either way.
        await Promise.all(lanes.flatMap((l) => [closeQuietly(l?.source), closeQuietly(l?.target)]));
      }
      return { snapshot, lsn, tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
    } catch (err) {
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'loading' });
    } finally {
      await closeQuietly(holder);
    }
  });
}

/** A source connection inside the exported snapshot and a target connection. */
async function openLane(src: PgEndpoint, tgt: PgEndpoint, snapshot: string) {
  const source = await connect(src, { purpose: 'load' });
  try {
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, "''")}'`);
  } catch (err) {
    await closeQuietly(source);
    throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'importing the load snapshot' });
  }
  try {
    return { source, target: await connect(tgt, { purpose: 'load' }) };
  } catch (err) {
    // Without this the source would sit idle in transaction, holding back vacuum until the worker exits.
    await closeQuietly(source);
    throw err;
  }
}

interface CopyContext {
  snapshot: string;
  migration: string;
  checksums: boolean;
  src: PgEndpoint;
  tgt: PgEndpoint;
  progress: Progress;
  signal?: AbortSignal;
}

async function copyTable(lane: { source: Client; target: Client }, t: TableModel, ctx: CopyContext): Promise<TableLoadResult> {
  const key = qualifiedKey(t);
  const started = Date.now();
  const name = qualifiedTable(t.schema, t.name);
  const cols = t.columns.filter((c) => !c.generated);
  const colList = cols.map((c) => escapeIdentifier(c.name)).join(', ');
  // Binary is faster, but arrays and composites of user types embed OIDs that differ on the target.
  const format = cols.every((c) => c.binaryCopySafe) ? 'binary' : 'text';
  const { source, target } = lane;
  ctx.progress.running[key] = 0;
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      ctx.progress.bytes += chunk.length;
      ctx.progress.running[key] = bytes;
      cb(null, chunk);
    },
  });

  let rows = '0';
  try {
    await target.query('BEGIN');
    // TRUNCATE in the same transaction makes the load of this table all-or-nothing and lets COPY FREEZE skip later vacuum work.
    await target.query(`TRUNCATE ${name}`);
    if (t.partitioned) {
      // COPY cannot read a partitioned parent, and its rows are loaded with its partitions.
    } else if (cols.length > 0) {
      const sink = target.query(copyFrom(`COPY ${name} (${colList}) FROM STDIN WITH (FORMAT ${format}, FREEZE)`));
      const out = source.query(copyTo(`COPY ${name} (${colList}) TO STDOUT WITH (FORMAT ${format})`));
      out.once('error', (e) => markSide(e, 'source'));
      sink.once('error', (e) => markSide(e, 'target'));
      await pipeline(out, meter, sink, ctx.signal ? { signal: ctx.signal } : {});
      rows = String(sink.rowCount ?? 0);
    } else {
      const r = await source.query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${name}`).catch((e) => tagSide(e, 'source'));
      await target.query(`INSERT INTO ${name} SELECT FROM generate_series(1, $1::bigint)`, [r.rows[0]!.n]);
      rows = r.rows[0]!.n;
    }
    let checksum: string | null = null;
    if (ctx.checksums) {
      // Same snapshot as the COPY: validation compares against exactly what was read.
      const r = await source.query<{ rows: string; checksum: string }>(checksumQuery(t, true)).catch((e) => tagSide(e, 'source'));
      checksum = r.rows[0]!.checksum;
      if (r.rows[0]!.rows !== rows) {
        throw ApplicationFailure.create({
          type: FailureType.DatabaseError,
          message: `${ctx.src.description}: ${key} returned ${rows} rows to COPY but ${r.rows[0]!.rows} to the checksum in the same snapshot`,
          details: [{ table: key }],
        });
      }
    }
    await target.query(
      `INSERT INTO _dbferry.table_loads (run_id, table_key, rows, bytes, source_checksum, snapshot)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (run_id, table_key) DO UPDATE SET rows = EXCLUDED.rows, bytes = EXCLUDED.bytes,
         source_checksum = EXCLUDED.source_checksum, snapshot = EXCLUDED.snapshot, loaded_at = now()`,
      [ctx.migration, key, rows, bytes, checksum, ctx.snapshot],
    );
    await target.query('COMMIT');
  } catch (err) {
    // A target left mid-COPY may not answer: the lane is closed by the caller either way.
    await Promise.race([target.query('ROLLBACK').catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
    if (err instanceof ApplicationFailure) throw err;
    const side = (err as { dbferrySide?: string }).dbferrySide === 'source' ? 'source' : 'target';
    const ep = side === 'source' ? ctx.src : ctx.tgt;
    throw toFailure(err, side, { endpoint: ep.description, secrets: ep.secrets, table: key, doing: `copying ${key}` });
  } finally {
    delete ctx.progress.running[key];
  }
  ctx.progress.tablesDone++;
  return { table: key, rows, bytes, ms: Date.now() - started, format };
}

/** Marks which endpoint an error came from, so the failure names the right one. */
function markSide(err: unknown, side: 'source' | 'target'): void {
  if (err && typeof err === 'object' && !('dbferrySide' in err)) (err as { dbferrySide?: string }).dbferrySide = side;
}

function tagSide(err: unknown, side: 'source' | 'target'): never {
  markSide(err, side);
  throw err;
}

import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, FullLoadResult, TableLoadResult } from '../../plan/migration-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { inParallel, withHeartbeat } from '../heartbeat';
import { loadModel } from './model';
import { checksumQuery } from './checksum';
import { chunkFilter, planChunks, type Chunk, type TableExtent } from './chunks';
import { closeQuietly, connect, resolveEndpoint, withConnection, type PgEndpoint } from './connection';
import { qualifiedTable, quoteIdent } from './ddl';
import { toFailure } from './errors';

interface Progress {
  tablesTotal: number;
  tablesDone: number;
  chunksTotal: number;
  chunksDone: number;
  bytes: number;
  running: Record<string, number>;
}

/**
 * Copies every selected table inside one exported snapshot of the source, `load.parallel`
 * chunks at once, streaming COPY with back-pressure (memory stays bounded whatever the size).
 * Large tables are split into page ranges (chunks.ts) so they spread over all lanes. Each chunk
 * is copied and recorded in _dbferry.table_loads in one target transaction, so it is either
 * fully loaded under this snapshot or not at all. A retry
 * takes a fresh snapshot and reloads every table, so all tables stay from one point in time.
 */
export async function fullLoadPostgres({ plan, migration }: ActivityInput): Promise<FullLoadResult> {
  const started = Date.now();
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  const tables = [...model.tables].sort((a, b) => Number(b.estimatedBytes) - Number(a.estimatedBytes));
  const progress: Progress = { tablesTotal: tables.length, tablesDone: 0, chunksTotal: 0, chunksDone: 0, bytes: 0, running: {} };

  return withHeartbeat(() => ({ ...progress }), async (signal) => {
    const holder = await connect(src, { purpose: 'snapshot' });
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await holder.query<{ snapshot: string; lsn: string }>(
        'SELECT pg_export_snapshot() AS snapshot, pg_current_wal_lsn()::text AS lsn',
      );
      const { snapshot, lsn } = rows[0]!;
      const chunks = planChunks(tables, await tableExtents(holder, tables), plan.load.chunkRows);
      progress.chunksTotal = chunks.length;
      await truncateChunkedTables(tgt, migration.runId, chunks);
      const done = new Map<TableModel, TableLoadResult & { started: number; chunksLeft: number }>();
      const lanes: Array<{ source: Client; target: Client } | undefined> = [];
      try {
        await inParallel(chunks, plan.load.parallel, async (chunk, lane) => {
          lanes[lane] ??= await openLane(src, tgt, snapshot);
          const t0 = Date.now();
          const r = await copyChunk(lanes[lane]!, chunk, { snapshot, migration: migration.runId, checksums: plan.validate.checksums, src, tgt, progress, signal });
          const acc = done.get(chunk.table) ?? { ...r, rows: '0', bytes: 0, started: t0, chunksLeft: chunk.of };
          acc.rows = String(BigInt(acc.rows) + BigInt(r.rows));
          acc.bytes += r.bytes;
          acc.started = Math.min(acc.started, t0);
          acc.ms = Date.now() - acc.started;
          if (--acc.chunksLeft === 0) progress.tablesDone++;
          done.set(chunk.table, acc);
        });
      } finally {
        // No COMMIT on the source lanes: they are read-only, and one left mid-COPY by a failed
        // chunk would never answer it. Closing ends the transaction either way.
        await Promise.all(lanes.flatMap((l) => [closeQuietly(l?.source), closeQuietly(l?.target)]));
      }
      const results = [...done.values()].map(({ table, rows, bytes, ms, format }) => ({ table, rows, bytes, ms, format }));
      return { snapshot, lsn, tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
    } catch (err) {
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'loading' });
    } finally {
      await closeQuietly(holder);
    }
  });
}

/** Heap size and row estimate of each table, read inside the snapshot's transaction. */
async function tableExtents(holder: Client, tables: TableModel[]): Promise<Map<TableModel, TableExtent>> {
  const r = await holder.query<{ i: number; pages: string; reltuples: number }>(
    `SELECT i, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages, c.reltuples
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(s, t, i)
       JOIN pg_namespace n ON n.nspname = x.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.t`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(r.rows.map((row) => [tables[Number(row.i) - 1]!, { pages: Number(row.pages), reltuples: Number(row.reltuples) }]));
}

/**
 * Chunks of one table load concurrently, so such a table cannot be truncated per chunk: it is
 * emptied (with its ledger rows) once, before any chunk of this attempt, in one transaction.
 */
async function truncateChunkedTables(tgt: PgEndpoint, runId: string, chunks: Chunk[]): Promise<void> {
  const chunked = [...new Set(chunks.filter((c) => c.index > 0).map((c) => c.table))];
  if (chunked.length === 0) return;
  await withConnection(tgt, 'truncate', async (c) => {
    await c.query('BEGIN');
    await c.query(`TRUNCATE ${chunked.map((t) => qualifiedTable(t.schema, t.name)).join(', ')}`);
    await c.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND table_key = ANY($2)', [runId, chunked.map(qualifiedKey)]);
    await c.query('COMMIT');
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

async function copyChunk(lane: { source: Client; target: Client }, chunk: Chunk, ctx: CopyContext): Promise<TableLoadResult> {
  const t = chunk.table;
  const key = qualifiedKey(t);
  const where = chunkFilter(chunk);
  const label = chunk.index === 0 ? key : `${key} #${chunk.index}/${chunk.of}`;
  const started = Date.now();
  const name = qualifiedTable(t.schema, t.name);
  const cols = t.columns.filter((c) => !c.generated);
  const colList = cols.map((c) => quoteIdent(c.name)).join(', ');
  // Binary is faster, but arrays and composites of user types embed OIDs that differ on the target.
  const format = cols.every((c) => c.binaryCopySafe) ? 'binary' : 'text';
  const { source, target } = lane;
  ctx.progress.running[label] = 0;
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      ctx.progress.bytes += chunk.length;
      ctx.progress.running[label] = bytes;
      cb(null, chunk);
    },
  });

  let rows = '0';
  try {
    await target.query('BEGIN');
    // A whole table: TRUNCATE in the same transaction makes its load all-or-nothing and lets
    // COPY FREEZE skip later vacuum work. Chunks: the table was emptied before the first one.
    if (chunk.index === 0) {
      await target.query(`TRUNCATE ${name}`);
      // Ledger rows of an earlier attempt that chunked this table would add to this one's.
      await target.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1 AND table_key = $2', [ctx.migration, key]);
    }
    const freeze = chunk.index === 0 ? ', FREEZE' : '';
    if (t.partitioned) {
      // COPY cannot read a partitioned parent, and its rows are loaded with its partitions.
    } else if (cols.length > 0) {
      const sink = target.query(copyFrom(`COPY ${name} (${colList}) FROM STDIN WITH (FORMAT ${format}${freeze})`));
      const query = where ? `(SELECT ${colList} FROM ONLY ${name}${where})` : `${name} (${colList})`;
      const out = source.query(copyTo(`COPY ${query} TO STDOUT WITH (FORMAT ${format})`));
      out.once('error', (e) => markSide(e, 'source'));
      sink.once('error', (e) => markSide(e, 'target'));
      await pipeline(out, meter, sink, ctx.signal ? { signal: ctx.signal } : {});
      rows = String(sink.rowCount ?? 0);
    } else {
      const r = await source.query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${name}${where}`).catch((e) => tagSide(e, 'source'));
      await target.query(`INSERT INTO ${name} SELECT FROM generate_series(1, $1::bigint)`, [r.rows[0]!.n]);
      rows = r.rows[0]!.n;
    }
    let checksum: string | null = null;
    if (ctx.checksums) {
      // Same snapshot as the COPY: validation compares against exactly what was read.
      const r = await source.query<{ rows: string; checksum: string }>(checksumQuery(t, true, where)).catch((e) => tagSide(e, 'source'));
      checksum = r.rows[0]!.checksum;
      if (r.rows[0]!.rows !== rows) {
        throw ApplicationFailure.create({
          type: FailureType.DatabaseError,
          message: `${ctx.src.description}: ${label} returned ${rows} rows to COPY but ${r.rows[0]!.rows} to the checksum in the same snapshot`,
          details: [{ table: key }],
        });
      }
    }
    await target.query(
      `INSERT INTO _dbferry.table_loads (run_id, table_key, chunk, rows, bytes, source_checksum, snapshot)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (run_id, table_key, chunk) DO UPDATE SET rows = EXCLUDED.rows, bytes = EXCLUDED.bytes,
         source_checksum = EXCLUDED.source_checksum, snapshot = EXCLUDED.snapshot, loaded_at = now()`,
      [ctx.migration, key, chunk.index, rows, bytes, checksum, ctx.snapshot],
    );
    await target.query('COMMIT');
  } catch (err) {
    // A target left mid-COPY may not answer: the lane is closed by the caller either way.
    await Promise.race([target.query('ROLLBACK').catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
    if (err instanceof ApplicationFailure) throw err;
    const side = (err as { dbferrySide?: string }).dbferrySide === 'source' ? 'source' : 'target';
    const ep = side === 'source' ? ctx.src : ctx.tgt;
    throw toFailure(err, side, { endpoint: ep.description, secrets: ep.secrets, table: key, doing: `copying ${label}` });
  } finally {
    delete ctx.progress.running[label];
  }
  ctx.progress.chunksDone++;
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

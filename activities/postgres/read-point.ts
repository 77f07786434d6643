import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import { chunkFilter, type ChunkRange } from '../../plan/load-chunks';
import type { MigrationRef } from '../../plan/migration-types';
import { sourceColumns, qualifiedKey, type TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { ReadPointGone, type HeldReadPoint, type RowFormat, type SourceReader, type TableChecksum } from '../engine';
import { checksumQuery, sourceChecksum } from '../pg/checksum';
import { copyOutStream } from '../pg/copy-out-stream';
import { closeQuietly, connect, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { ensurePublication } from './cdc/publication';
import { createSlotWithSnapshot } from './cdc/replication';
import { formatLsn } from './lsn';
import { pgPosition } from './position';

const CHECK_EVERY_MS = 5_000;
const CHECK_TIMEOUT_MS = 30_000;

/**
 * A snapshot of the source kept alive on one connection: a snapshot lives only as long as the
 * transaction that exported it. With CDC to follow, the slot is created with its exported
 * snapshot (CDC then starts exactly where the snapshot ends), after the publication (pgoutput
 * reads it as of each change); should that slot exist already (a later generation), a plain
 * snapshot is exported and CDC replays idempotently from the slot's start.
 */
export async function holdPgReadPoint(
  src: PgEndpoint,
  opts: { forCdc: boolean; tables: TableModel[]; migration: MigrationRef; slot: string; publication: string },
): Promise<HeldReadPoint> {
  let slotCreated: Awaited<ReturnType<typeof createSlotWithSnapshot>> | undefined;
  if (opts.forCdc) {
    const exists = await withConnection(src, 'prepare CDC', async (c) => {
      await ensurePublication(c, opts.publication, opts.tables, opts.migration, src.description);
      const r = await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [opts.slot]);
      return r.rows.length > 0;
    });
    if (!exists) slotCreated = await createSlotWithSnapshot(src, opts.slot);
  }
  let holder: Client;
  let token: string;
  let lsn: string;
  if (slotCreated) {
    holder = slotCreated.client;
    token = slotCreated.snapshot;
    lsn = formatLsn(slotCreated.consistentPoint);
  } else {
    holder = await connect(src, { purpose: 'snapshot holder' });
    try {
      // The transaction sits idle for hours by design: a server-side idle timeout would end it.
      await holder.query('SET idle_in_transaction_session_timeout = 0');
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await holder.query<{ snapshot: string; lsn: string }>(
        `SELECT pg_export_snapshot() AS snapshot,
                (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
      );
      token = rows[0]!.snapshot;
      lsn = rows[0]!.lsn;
    } catch (err) {
      await closeQuietly(holder);
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'exporting the load snapshot' });
    }
  }
  const replication = !!slotCreated;
  const conn = holder;
  return {
    token,
    position: pgPosition(lsn),
    forCdc: replication,
    async watch(signal?: AbortSignal) {
      // A replication connection's snapshot dies with its next command: watch the socket instead.
      const lost = replication ? connectionLost(conn, src) : undefined;
      // It rejects again when the holder closes its own connection at the end: not an error then.
      lost?.catch(() => undefined);
      while (!signal?.aborted) {
        // Never race against `undefined` (no slot held): it wins at once, and the loop would
        // send thousands of `SELECT 1` a second to the source for the whole load.
        const pause = sleep(CHECK_EVERY_MS, undefined, { signal }).catch(() => undefined);
        await (lost ? Promise.race([pause, lost]) : pause);
        if (signal?.aborted) break;
        if (!replication) await stillAlive(conn, src);
      }
    },
    release: () => closeQuietly(conn),
  };
}

/**
 * A source connection inside an exported snapshot (`token`); ReadPointGone when its exporting
 * transaction has ended (SQLSTATE 22023, "invalid snapshot identifier").
 */
export async function joinPgReadPoint(src: PgEndpoint, token: string, opts: { changesReplayed: boolean }): Promise<SourceReader> {
  const client = await connect(src, { purpose: 'load' });
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT '${token.replace(/'/g, "''")}'`);
  } catch (err) {
    await closeQuietly(client);
    if ((err as { code?: string }).code === '22023') throw new ReadPointGone(`snapshot ${token} has ended`);
    throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'importing the load snapshot' });
  }
  return new PgReader(client, src, opts.changesReplayed);
}

/** A reader of the source as it is now: each statement sees the latest committed rows. */
export async function openPgReader(src: PgEndpoint, purpose: string): Promise<SourceReader> {
  return new PgReader(await connect(src, { purpose }), src);
}

class PgReader implements SourceReader {
  readonly copyHashable = true;

  constructor(
    private readonly client: Client,
    private readonly src: PgEndpoint,
    /** CDC replays every change since the read point (a TRUNCATE included). */
    private readonly changesReplayed = false,
  ) {}

  async copyOut(t: TableModel, range: ChunkRange, format: RowFormat) {
    const name = qualifiedTable(t.schema, t.name);
    if (!t.partitioned) await this.refuseRewritten(t, name);
    const colList = sourceColumns(t).map((c) => quoteIdent(c.name)).join(', ');
    const where = chunkFilter(t, range);
    // ONLY: an inheritance parent's own rows; its children are tables of their own.
    const query = where ? `(SELECT ${colList} FROM ONLY ${name}${where})` : `${name} (${colList})`;
    return this.client.query(copyOutStream(`COPY ${query} TO STDOUT WITH (FORMAT ${format})`));
  }

  async checksum(t: TableModel, range: ChunkRange, withChecksum: boolean): Promise<TableChecksum> {
    const where = chunkFilter(t, range);
    const only = range.kind !== 'tree';
    try {
      if (withChecksum) {
        const r = await sourceChecksum(this.client, t, where, only);
        return { rows: r.rows, checksum: r.checksum, method: r.method };
      }
      const r = await this.client.query<{ rows: string }>(checksumQuery(t, false, where, 'text-hash', only));
      return { rows: r.rows[0]!.rows, method: 'text-hash' };
    } catch (err) {
      const key = qualifiedKey(t);
      const code = (err as { code?: string }).code;
      // A column or the table is gone: a schema change (e.g. a DDL no change followed during CDC).
      if (code === '42703' || code === '42P01') {
        throw ApplicationFailure.create({
          type: FailureType.SchemaChanged,
          nonRetryable: true,
          message: `${this.src.description}: source table ${key} no longer matches the columns dbferry migrated (${(err as Error).message}): it changed on the source`,
          details: [{ table: key, hint: 'make the target table match the source (or undo the change on the source), then run dbferry retry' }],
        });
      }
      throw toFailure(err, 'source', { endpoint: this.src.description, secrets: this.src.secrets, table: key, doing: `counting ${key}` });
    }
  }

  /**
   * A table rewritten after the snapshot (ALTER TABLE … that rewrites it, TRUNCATE) looks empty
   * from the snapshot: PostgreSQL's documented MVCC caveat, and a load that read it would
   * report "equal" with 0 rows. Under a lock that keeps a rewrite out for the rest of this
   * transaction (COPY takes the same lock), the table's file as the snapshot sees it
   * (pg_class read under the snapshot) must still be the file it has now.
   */
  private async refuseRewritten(t: TableModel, name: string): Promise<void> {
    await this.client.query(`LOCK TABLE ONLY ${name} IN ACCESS SHARE MODE`);
    const r = await this.client.query<{ seen: string | null; now: string | null }>(
      `SELECT (SELECT relfilenode FROM pg_class WHERE oid = $1::regclass)::text AS seen, pg_relation_filenode($1::regclass)::text AS now`,
      [name],
    );
    const { seen, now } = r.rows[0]!;
    // With CDC, a TRUNCATE since the read point is replayed, and a rewrite that keeps every row
    // (VACUUM FULL, CLUSTER) is harmless: only a rewrite that changed the columns loses rows.
    if (seen !== now && (!this.changesReplayed || (await this.columnsChanged(name)))) {
      const key = qualifiedKey(t);
      throw ApplicationFailure.create({
        type: FailureType.SchemaChanged,
        nonRetryable: true,
        message: `${this.src.description}: source table ${key} was rewritten after the load snapshot was taken (an ALTER TABLE that rewrites it, or a TRUNCATE): the snapshot no longer sees its rows`,
        details: [{ table: key, hint: 'run dbferry retry: the load goes on under a new snapshot (tables already loaded stay as loaded)' }],
      });
    }
  }

  /** The table's columns as the read point sees them differ from the columns it has now. */
  private async columnsChanged(name: string): Promise<boolean> {
    const columns = `SELECT string_agg(attname || ' ' || atttypid::regtype::text || ' ' || atttypmod, ', ' ORDER BY attnum) AS cols
                       FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`;
    const then = (await this.client.query<{ cols: string }>(columns, [name])).rows[0]?.cols;
    const current = await withConnection(this.src, 'check the columns', async (c) => (await c.query<{ cols: string }>(columns, [name])).rows[0]?.cols);
    return then !== current;
  }

  // No COMMIT: the reader is read-only, and a connection left mid-COPY would never answer it.
  close = () => closeQuietly(this.client);
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

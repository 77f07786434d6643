/**
 * The MySQL/MariaDB binlog as engine-neutral change events: dbferry connects as a replica
 * (`@vlasky/zongji`, pinned, behind this module only) and translates its events. Positions are
 * `mysql:<file>:<offset>`, tracked from Rotate events and each event's end offset.
 *
 * A transaction is a GTID event (MariaDB's, MySQL's or MySQL's anonymous one) up to its Xid (or
 * COMMIT, or the statement itself for DDL). Its `commitPosition` is the end of its GTID event: it
 * is unique, ordered, and later than any position the previous transaction ended at, so a resumed
 * stream tells applied transactions from new ones. Transactions that touch no migrated table
 * produce no events, only an idle report of where they ended.
 *
 * Row images must be FULL and row metadata FULL (preflight checks both): column names come from
 * the binlog's own table map as it was when the row was written, never from information_schema
 * as it is now.
 */
import { crc32 } from 'node:zlib';
import ZongJi, { type AnyBinlogEvent, type TableMapEntry } from '@vlasky/zongji';
import { ApplicationFailure } from '@temporalio/common';
import type { Connection } from 'mysql2/promise';
import { FailureType } from '../../plan/failure-types';
import { sourceColumns, qualifiedKey, type ColumnModel, type SchemaModel, type TableModel } from '../../plan/schema-model';
import type { ChangeEvent, ChangeStream, EnginePosition, SourceCdcState, SourceRelation, SourceRelationColumn } from '../engine';
import { BINLOG_VALUE_OPTIONS, binlogRowEncoder, readExactly } from './binlog-values';
import { closeMysql, connectMysql, mysqlConnectionAuth, mysqlFailure, type MysqlEndpoint } from './connection';
import { ddlVerdict } from './binlog-ddl';
import { compareMysqlPositions, mysqlPosition, parseMysqlPosition } from './position';
import { introspectMysql } from './introspect';
import { masterPosition } from './reader';

/** Events read ahead of the applier before the replica connection stops reading (back-pressure). */
const HIGH_WATER = 2_000;
const LOW_WATER = 500;
/** Change events handed over at most at once. */
const MAX_BATCH = 1_024;
/** The server's heartbeat period on the replica connection (nanoseconds). */
const HEARTBEAT_NS = 5_000_000_000;
/** No event for this long while the source's binlog grows: the replica connection is dead. */
const STALL_MS = 60_000;

type Encoded = Array<Buffer | null>;

interface TableState {
  relation: SourceRelation;
  model: TableModel;
  encode: (row: Record<string, unknown>, entry: TableMapEntry) => Encoded;
}

export interface MysqlStreamOptions {
  from: EnginePosition;
  model: SchemaModel;
  serverId: number;
}

/** A failure the stream found in the binlog itself (not the connection's): the loop ends with it. */
class StreamFailure extends Error {
  constructor(readonly failure: ApplicationFailure) {
    super(failure.message);
  }
}

export async function openMysqlChangeStream(ep: MysqlEndpoint, opts: MysqlStreamOptions): Promise<ChangeStream> {
  const start = parseMysqlPosition(opts.from);
  const tablesByKey = new Map(opts.model.tables.map((t) => [qualifiedKey(t), t]));
  let control: Connection | undefined;
  const onControl = async <T>(doing: string, fn: (c: Connection) => Promise<T>): Promise<T> => {
    try {
      control ??= await connectMysql(ep, 'cdc control');
      return await fn(control);
    } catch (err) {
      await closeMysql(control);
      control = undefined;
      throw mysqlFailure(err, ep, { doing });
    }
  };

  const z = new ZongJi({
    ...(await mysqlConnectionAuth(ep)),
    ...(ep.ssl ? { ssl: ep.ssl } : {}),
    // Values as the load reads them (binlog-values.ts).
    ...BINLOG_VALUE_OPTIONS,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: 'utf8mb4_general_ci',
    connectTimeout: 15_000,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
  });

  // Events waiting for the consumer; the replica connection pauses above HIGH_WATER.
  const queue: AnyBinlogEvent[] = [];
  let failure: unknown;
  let ended = false;
  let wake: (() => void) | undefined;
  let paused = false;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let lastEventAt = Date.now();
  z.on('binlog', (e) => {
    lastEventAt = Date.now();
    // Synchronously, before the rows that follow arrive (they decode with this table map).
    if (e.getTypeName() === 'TableMap') readExactly(z, e as Extract<AnyBinlogEvent, { getTypeName(): 'TableMap' }>);
    queue.push(e);
    if (!paused && queue.length >= HIGH_WATER) {
      paused = true;
      z.connection?.pause();
    }
    notify();
  });
  z.on('error', (err) => {
    failure ??= err;
    notify();
  });
  z.on('stopped', () => {
    ended = true;
    notify();
  });
  const ready = new Promise<void>((resolve, reject) => {
    z.once('ready', () => resolve());
    z.once('error', reject);
  });
  z.start({ serverId: opts.serverId, filename: start.file, position: Number(start.offset) });
  // Heartbeats while the binlog is idle, as a replica asks for them (queued on the replica
  // connection before zongji's dump request): they carry the position, and their silence
  // tells a dead connection from a quiet source.
  z.connection?.query(`SET @master_heartbeat_period = ${HEARTBEAT_NS}`, () => undefined);
  verifyChecksums(z, (at) => {
    failure ??= new StreamFailure(
      ApplicationFailure.create({
        type: FailureType.Transient,
        message: `${ep.description}: a binlog event near ${mysqlPosition(file, at || lastEnd)} arrived with a CRC32 checksum that does not match its bytes (corrupted on the way or on the source's disk): it was not applied`,
        details: [{ hint: 'CDC reconnects and reads it again; should it repeat, check the source\'s binlog with mysqlbinlog --verify-binlog-checksum' }],
      }),
    );
    notify();
  });
  try {
    await ready;
  } catch (err) {
    z.stop();
    throw binlogFailure(err, ep, opts.from);
  }

  let file = start.file;
  let lastEnd = Number(start.offset);
  let newest: EnginePosition | undefined;
  const tables = new Map<string, TableState>();
  let nextRelationId = 1;

  async function next(): Promise<AnyBinlogEvent | undefined> {
    for (;;) {
      const e = queue.shift();
      if (e) {
        if (paused && queue.length <= LOW_WATER) {
          paused = false;
          z.connection?.resume();
        }
        return e;
      }
      if (failure) throw failure instanceof StreamFailure ? failure : binlogFailure(failure, ep, mysqlPosition(file, lastEnd));
      if (ended) return undefined;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  /** The table's relation, described again when the binlog's columns for it changed (ADD COLUMN). */
  async function tableFor(entry: TableMapEntry, key: string): Promise<{ state: TableState; changed: boolean }> {
    const names = entry.columnSchemas.map((c) => c.COLUMN_NAME);
    const known = tables.get(key);
    if (known && sameNames(known.relation.columns.map((c) => c.name), names)) return { state: known, changed: false };
    const model = tablesByKey.get(key)!;
    const base = known?.model ?? model;
    const byName = new Map(base.columns.map((c) => [c.name, c]));
    const added = names.filter((n) => !byName.has(n));
    let extra: Array<{ model: ColumnModel; relation: SourceRelationColumn }> = [];
    if (added.length > 0) {
      // The model of the table as it is now, converted as the load converts (types.ts).
      const now = await onControl(`reading the columns of ${key}`, (c) => introspectMysql(c, (s, t) => s === base.schema && t === base.name));
      const current = now.model.tables[0]?.columns ?? [];
      extra = added.map((n) => {
        const col = current.find((c) => c.name === n);
        if (!col) throw new StreamFailure(schemaChange(key, `column ${n} in the binlog is no longer in information_schema (added and dropped again since)`));
        return addedColumn(col);
      });
    }
    const columns = [...base.columns.filter((c) => names.includes(c.name)), ...extra.map((x) => x.model)];
    const ordered = names.map((n) => columns.find((c) => c.name === n)!);
    const tableModel: TableModel = { ...base, columns: ordered };
    const relation: SourceRelation = {
      id: known?.relation.id ?? nextRelationId++,
      schema: model.schema,
      name: model.name,
      // Row images are FULL: every update and delete carries the whole old row.
      fullIdentity: !model.primaryKey,
      columns: ordered.map((c) => extra.find((x) => x.model === c)?.relation ?? { name: c.name, type: c.type, notNull: c.notNull, volatileDefault: false }),
    };
    const state: TableState = { relation, model: tableModel, encode: binlogRowEncoder(tableModel, () => undefined) };
    tables.set(key, state);
    return { state, changed: true };
  }

  // Events translated from the binlog events received, handed over in batches (engine.ts).
  async function* batches(): AsyncGenerator<ChangeEvent[], void, undefined> {
    let out: ChangeEvent[] = [];
    // The transaction being read: where it began, and whether its begin was sent.
    let tx: { commitPosition: EnginePosition; began: boolean; time: bigint } | undefined;
    const endTx = (commitTime: bigint) => {
      const end = mysqlPosition(file, lastEnd);
      newest = end;
      out.push(tx?.began ? { kind: 'commit', commitPosition: tx.commitPosition, endPosition: end, commitTimeMicros: commitTime } : { kind: 'idle', position: end });
      tx = undefined;
    };
    const begin = () => {
      if (!tx) throw new Error(`a row event at ${mysqlPosition(file, lastEnd)} outside a transaction`);
      if (!tx.began) {
        tx.began = true;
        out.push({ kind: 'begin', commitPosition: tx.commitPosition, commitTimeMicros: tx.time });
      }
    };
    for (;;) {
      // What was translated goes out once nothing more is waiting (or enough of it is).
      if (out.length > 0 && (queue.length === 0 || out.length >= MAX_BATCH)) {
        yield out;
        out = [];
      }
      const e = await next();
      if (!e) return;
      const at = BigInt(e.timestamp) * 1000n;
      switch (e.getTypeName()) {
        case 'Rotate': {
          const r = e as Extract<AnyBinlogEvent, { getTypeName(): 'Rotate' }>;
          file = r.binlogName;
          lastEnd = r.position;
          break;
        }
        case 'MariadbGtid':
        case 'Gtid':
        case 'AnonymousGtid':
          lastEnd = e.nextPosition;
          tx = { commitPosition: mysqlPosition(file, lastEnd), began: false, time: at };
          break;
        case 'Xid':
          lastEnd = e.nextPosition;
          endTx(at);
          break;
        case 'Query': {
          const q = e as Extract<AnyBinlogEvent, { getTypeName(): 'Query' }>;
          const sql = q.query.trim();
          if (/^BEGIN$/i.test(sql)) break;
          lastEnd = e.nextPosition;
          if (/^COMMIT$/i.test(sql) || /^ROLLBACK$/i.test(sql)) {
            endTx(at);
            break;
          }
          if (/^XA\s/i.test(sql)) {
            throw new StreamFailure(
              ApplicationFailure.create({
                type: FailureType.Unsupported,
                nonRetryable: true,
                message: `${ep.description}: an XA transaction at ${mysqlPosition(file, lastEnd)} (${sql.slice(0, 80)}): dbferry's binlog CDC does not apply XA transactions`,
                details: [{ hint: 'finish the migration without XA transactions on the migrated tables, or reload it after they are done' }],
              }),
            );
          }
          tx ??= { commitPosition: mysqlPosition(file, e.nextPosition), began: false, time: at };
          const verdict = ddlVerdict(sql, q.schema, (schema, name) => tablesByKey.has(qualifiedKey({ schema, name })));
          if (verdict.kind === 'refuse') throw new StreamFailure(schemaChange(verdict.table, `${verdict.why}: ${sql.length > 300 ? sql.slice(0, 300) + '…' : sql}`));
          if (verdict.kind === 'truncate') {
            begin();
            const ids: number[] = [];
            for (const key of verdict.tables) {
              const t = tables.get(key);
              if (t) ids.push(t.relation.id);
              else {
                const model = tablesByKey.get(key)!;
                const relation = initialRelation(model, nextRelationId++);
                tables.set(key, { relation, model, encode: binlogRowEncoder(model, () => undefined) });
                out.push({ kind: 'relation', relation });
                ids.push(relation.id);
              }
            }
            out.push({ kind: 'truncate', relationIds: ids, restartIdentity: true, position: tx.commitPosition });
          }
          // ADD COLUMN needs nothing here: the table's next table map names the new column.
          endTx(at);
          break;
        }
        case 'WriteRows':
        case 'UpdateRows':
        case 'DeleteRows': {
          const r = e as Extract<AnyBinlogEvent, { getTypeName(): 'WriteRows' | 'UpdateRows' | 'DeleteRows' }>;
          const entry = r.tableMap[r.tableId];
          if (!entry) break;
          const key = qualifiedKey({ schema: entry.parentSchema, name: entry.tableName });
          if (!tablesByKey.has(key)) break;
          // zongji reads a column missing from the row image as NULL: with a session's
          // binlog_row_image MINIMAL or NOBLOB, that NULL would be written to the target.
          const images = r as unknown as { numberOfColumns: number; columns_present_bitmap?: Buffer; columns_present_bitmap2?: Buffer };
          if (!allColumns(images.columns_present_bitmap, images.numberOfColumns) || !allColumns(images.columns_present_bitmap2, images.numberOfColumns)) {
            throw new StreamFailure(
              ApplicationFailure.create({
                type: FailureType.SourceCannotSend,
                nonRetryable: true,
                message: `${ep.description}: a change of ${key} at ${mysqlPosition(file, lastEnd)} without every column in its row image (the session that wrote it had binlog_row_image MINIMAL or NOBLOB): the missing values cannot be known`,
                details: [{ table: key, hint: 'set binlog_row_image = FULL for every session on the source (SET GLOBAL and the application\'s connections), then abort and start the migration again: the changes since are incomplete' }],
              }),
            );
          }
          const { state, changed } = await tableFor(entry, key);
          if (changed) out.push({ kind: 'relation', relation: state.relation });
          begin();
          const position = tx!.commitPosition;
          const id = state.relation.id;
          const encode = (row: Record<string, unknown>) => {
            try {
              return state.encode(row, entry);
            } catch (err) {
              throw new StreamFailure(mysqlFailure(err, ep, { table: key, doing: `decoding a change at ${position}` }));
            }
          };
          if (r.getTypeName() === 'WriteRows') {
            for (const row of (r as Extract<AnyBinlogEvent, { getTypeName(): 'WriteRows' }>).rows) out.push({ kind: 'change', position, change: { kind: 'insert', relationId: id, new: encode(row) } });
          } else if (r.getTypeName() === 'DeleteRows') {
            for (const row of (r as Extract<AnyBinlogEvent, { getTypeName(): 'DeleteRows' }>).rows) {
              out.push({ kind: 'change', position, change: { kind: 'delete', relationId: id, old: { whole: true, tuple: encode(row) } } });
            }
          } else {
            for (const row of (r as Extract<AnyBinlogEvent, { getTypeName(): 'UpdateRows' }>).rows) {
              out.push({ kind: 'change', position, change: { kind: 'update', relationId: id, old: { whole: true, tuple: encode(row.before) }, new: encode(row.after) } });
            }
          }
          break;
        }
        case 'TransactionPayload':
        case 'PartialUpdateRows':
          throw new StreamFailure(
            ApplicationFailure.create({
              type: FailureType.SourceCannotSend,
              nonRetryable: true,
              message: `${ep.description}: a ${e.getTypeName() === 'TransactionPayload' ? 'compressed transaction (binlog_transaction_compression)' : 'partial JSON update (binlog_row_value_options=PARTIAL_JSON)'} at ${mysqlPosition(file, lastEnd)}, which dbferry's binlog reader cannot decode`,
              details: [{ hint: 'turn the setting off on the source (its changes since are lost to CDC: reload the migration)' }],
            }),
          );
        default:
          // Format, GTID lists, checkpoints, heartbeats, table maps: they only move the position.
          if (e.getTypeName() === 'Heartbeat') file = (e as Extract<AnyBinlogEvent, { getTypeName(): 'Heartbeat' }>).binlogName || file;
          if (e.nextPosition > 0 && e.getTypeName() !== 'TableMap') {
            lastEnd = e.nextPosition;
            if (!tx) {
              newest = mysqlPosition(file, lastEnd);
              out.push({ kind: 'idle', position: newest });
            }
          }
          break;
      }
    }
  }

  async function* guarded(): AsyncGenerator<ChangeEvent[], void, undefined> {
    try {
      yield* batches();
    } catch (err) {
      if (err instanceof StreamFailure) throw err.failure;
      throw err;
    }
  }

  return {
    [Symbol.asyncIterator]: () => guarded(),
    // The server keeps nothing for a replica: the target's progress row is the only bookmark.
    confirm: () => undefined,
    sourcePosition: () => newest,
    state: async () => {
      const state = await mysqlCdcState(onControl, () => newest ?? opts.from);
      // A replica connection can hang without an error (a network partition; the server sends
      // no heartbeats to zongji): the source moved on, nothing arrived and nothing waits to be
      // read. The stream fails (retryably) and the activity reconnects from the target's progress.
      if (queue.length === 0 && Date.now() - lastEventAt > STALL_MS && compareMysqlPositions(state.position, newest ?? opts.from) > 0) {
        failure ??= Object.assign(new Error(`the binlog connection received nothing for ${STALL_MS / 1000} s while the source's binlog moved on to ${state.position}`), { code: 'ETIMEDOUT' });
        notify();
      }
      return state;
    },
    close: async () => {
      z.stop();
      await closeMysql(control);
      control = undefined;
    },
  };
}

/** How long a GTID resolution waits for a transaction after the set before taking the binlog's end. */
const GTID_QUIET_MS = 2_000;

/**
 * The binlog position where the first transaction not in `gtidSet` begins (`cdc.startPosition`
 * given as a GTID set): the server itself finds it (MariaDB's slave_connect_state, MySQL's
 * COM_BINLOG_DUMP_GTID) and streams from there; the first GTID event's start is the answer.
 * With no such transaction yet, the end of what the server sent (the binlog's end).
 */
export async function resolveGtidStart(ep: MysqlEndpoint, gtidSet: string, serverId: number): Promise<EnginePosition> {
  const z = new ZongJi({ ...(await mysqlConnectionAuth(ep)), ...(ep.ssl ? { ssl: ep.ssl } : {}), ...BINLOG_VALUE_OPTIONS, connectTimeout: 15_000 });
  try {
    return await new Promise<EnginePosition>((resolve, reject) => {
      let file = '';
      let end = 0;
      let quiet: NodeJS.Timeout | undefined;
      const settle = () => {
        clearTimeout(quiet);
        quiet = setTimeout(() => (file ? resolve(mysqlPosition(file, end)) : reject(new Error(`the server sent no binlog position for GTID set ${gtidSet}`))), GTID_QUIET_MS);
      };
      z.on('binlog', (e: AnyBinlogEvent) => {
        const type = e.getTypeName();
        if (type === 'Rotate') {
          file = (e as Extract<AnyBinlogEvent, { getTypeName(): 'Rotate' }>).binlogName;
          end = (e as Extract<AnyBinlogEvent, { getTypeName(): 'Rotate' }>).position;
        } else if (type === 'MariadbGtid' || type === 'Gtid' || type === 'AnonymousGtid') {
          // An event is its 19-byte header, its body and, with checksums on, a 4-byte CRC.
          clearTimeout(quiet);
          resolve(mysqlPosition(file, e.nextPosition - e.size - 19 - (z.useChecksum ? 4 : 0)));
          return;
        } else if (e.nextPosition > 0) {
          end = e.nextPosition;
        }
        settle();
      });
      z.on('error', reject);
      z.on('ready', settle);
      z.start({ serverId, gtidSet });
    });
  } catch (err) {
    throw binlogFailure(err, ep, mysqlPosition('(GTID ' + gtidSet + ')', 0));
  } finally {
    z.stop();
  }
}

/** Where the source's binlog ends and how much of it the stream has not read yet. */
async function mysqlCdcState(
  onControl: <T>(doing: string, fn: (c: Connection) => Promise<T>) => Promise<T>,
  read: () => EnginePosition,
): Promise<SourceCdcState> {
  return onControl('reading the binlog position', async (c) => {
    const position = await masterPosition(c);
    const [logs] = await c.query('SHOW BINARY LOGS');
    const files = (logs as Array<Record<string, unknown>>).map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
    const at = parseMysqlPosition(read());
    let behind = 0;
    for (const f of files) {
      const order = compareMysqlPositions(mysqlPosition(f.name, 0), mysqlPosition(at.file, 0));
      if (order > 0) behind += f.size;
      else if (order === 0) behind += Math.max(0, f.size - Number(at.offset));
    }
    return { position, retainedBytes: behind, retainedBy: `the binlog not yet applied (from ${at.file}:${at.offset}; the server purges it by its own retention, not for dbferry)` };
  });
}

function initialRelation(model: TableModel, id: number): SourceRelation {
  return {
    id,
    schema: model.schema,
    name: model.name,
    fullIdentity: !model.primaryKey,
    columns: sourceColumns(model).map((c) => ({ name: c.name, type: c.type, notNull: c.notNull, volatileDefault: false })),
  };
}

/** A column added on the source while CDC runs: its converted type, and whether its default is a constant the target can fill. */
function addedColumn(col: ColumnModel): { model: ColumnModel; relation: SourceRelationColumn } {
  const def = col.default;
  const constant = def === undefined || /^(NULL|true|false|-?\d+(\.\d+)?(e[+-]?\d+)?|'(?:[^']|'')*')(::[a-z ()0-9,]+)?$/i.test(def);
  return {
    model: col,
    relation: {
      name: col.name,
      type: col.type,
      notNull: col.notNull,
      ...(def !== undefined && constant ? { storedDefault: def } : {}),
      volatileDefault: def !== undefined && !constant,
    },
  };
}

interface WirePacket {
  buffer: Buffer;
  offset: number;
  end: number;
}

/**
 * The binlog events' CRC32 checksums, checked as the packets arrive (zongji strips them
 * unchecked): a packet of the dump is an OK byte, then the event, whose last 4 bytes are the
 * CRC32 of the rest when the server writes checksums (binlog_checksum = CRC32). A mismatch is
 * reported, and the event goes no further than the stream's queue.
 */
export function verifyChecksums(z: ZongJi, bad: (nextPosition: number) => void): void {
  const conn = z.connection as unknown as { handlePacket(p?: WirePacket): void; _command?: { constructor: { name: string } } } | null;
  if (!conn) return;
  const handle = conn.handlePacket.bind(conn);
  conn.handlePacket = (p?: WirePacket) => {
    if (p && z.useChecksum && conn._command?.constructor.name === 'Binlog' && p.buffer[p.offset] === 0x00 && p.end - p.offset > 24) {
      const event = p.buffer.subarray(p.offset + 1, p.end);
      if (crc32(event.subarray(0, event.length - 4)) !== event.readUInt32LE(event.length - 4)) bad(event.readUInt32LE(13));
    }
    handle(p);
  };
}

/** Every column's bit is set in a row event's columns-present bitmap (absent: not that kind of image). */
function allColumns(bitmap: Buffer | undefined, n: number): boolean {
  if (!bitmap) return true;
  for (let i = 0; i < n; i++) if (((bitmap[i >> 3]! >> (i & 7)) & 1) === 0) return false;
  return true;
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function schemaChange(table: string, what: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.SchemaChanged,
    nonRetryable: true,
    message: `source table ${table} changed while CDC ran: ${what}`,
    details: [{ table, hint: 'make the target table match the source (or undo the change on the source), then run dbferry retry; CDC resumes from its last applied transaction' }],
  });
}

/**
 * The replica connection's failures: a purged binlog (ER 1236) is for a person (the changes are
 * gone); anything else is the connection's (the activity retries and resumes from the target's
 * progress row).
 */
export function binlogFailure(err: unknown, ep: MysqlEndpoint, at: EnginePosition): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = err as { errno?: number; message?: string };
  if (e?.errno === 1236) {
    const p = parseMysqlPosition(at);
    return ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${ep.description}: the binlog at ${p.file}:${p.offset} is no longer on the server (${e.message ?? 'error 1236'}): it was purged (binlog_expire_logs_seconds / expire_logs_days) before CDC read it, so the changes since are lost to CDC`,
      details: [{ hint: 'raise the source\'s binlog retention, then abort and start the migration again so it reloads the tables (a load from the current state)' }],
    });
  }
  const f = mysqlFailure(err, ep, { doing: `reading the binlog at ${at}` });
  // A dropped replica connection (server restart, network) is the stream's, never the data's.
  if (f.type === FailureType.DatabaseError && /closed|lost|ECONN|socket|shutdown/i.test(f.message)) {
    return ApplicationFailure.create({ type: FailureType.Transient, message: f.message, details: f.details as unknown[] });
  }
  return f;
}

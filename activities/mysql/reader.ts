import { Readable, Transform } from 'node:stream';
import type { Connection } from 'mysql2/promise';
import type { ChunkRange } from '../../plan/load-chunks';
import { sourceColumns, qualifiedKey, type ColumnModel, type TableModel } from '../../plan/schema-model';
import { mysqlCanonical, mysqlChecksumSql, quoteMysql } from '../cross-engine/canonical';
import { JsonDigest, jsonRowKey } from '../cross-engine/json-digest';
import type { CopyOut, RowFormat, SourceReader, TableChecksum } from '../engine';
import { closeMysql, connectMysql, mysqlFailure, type MysqlEndpoint } from './connection';
import { conversionWords, pgTextOf } from './pg-text';
import { mysqlPosition } from './position';

/** A reader inside one consistent snapshot, with the binlog position the snapshot is at. */
export interface MysqlReader extends SourceReader {
  /** `mysql:<file>:<offset>`: every transaction committed before it is in the snapshot, none after. */
  readonly position: string;
  /** Whether the session is still in its snapshot and idle (no read cut off mid-stream, no error). */
  healthy(): boolean;
  /** A round trip that keeps an idle session open; false when it is gone. */
  ping(): Promise<boolean>;
}

/**
 * Opens a consistent snapshot (InnoDB) and reads where it stands in the binlog. MariaDB reports
 * the position of the snapshot itself (binlog_snapshot_file/position, taken atomically with it);
 * where the server does not, SHOW MASTER STATUS right after is the best known (see the caller).
 */
export async function openMysqlReader(ep: MysqlEndpoint, purpose: string): Promise<MysqlReader> {
  return beginSnapshot(await connectMysql(ep, purpose), ep, purpose);
}

/** The same on a connected session (the read point connects first and begins under its lock). */
export async function beginSnapshot(c: Connection, ep: MysqlEndpoint, purpose: string): Promise<MysqlReader> {
  try {
    await c.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await c.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const position = await snapshotPosition(c);
    return new Reader(c, ep, position);
  } catch (err) {
    await closeMysql(c);
    throw mysqlFailure(err, ep, { doing: `opening a consistent snapshot (${purpose})` });
  }
}

async function snapshotPosition(c: Connection): Promise<string> {
  const [status] = await c.query("SHOW STATUS WHERE Variable_name IN ('binlog_snapshot_file', 'binlog_snapshot_position')");
  // MariaDB names them Binlog_snapshot_file and Binlog_snapshot_position.
  const v = new Map((status as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name.toLowerCase(), r.Value]));
  if (v.get('binlog_snapshot_file')) return mysqlPosition(v.get('binlog_snapshot_file')!, v.get('binlog_snapshot_position') ?? '0');
  // Binary log off, or a user who may not read it (SHOW MASTER STATUS needs BINLOG MONITOR or
  // REPLICATION CLIENT): no position, which only CDC needs (and its preflight asks for).
  return masterPosition(c).catch(() => mysqlPosition('', '0'));
}

/** The end of the source's binlog now: SHOW MASTER STATUS (MySQL 8.4: SHOW BINARY LOG STATUS). */
export async function masterPosition(c: Connection): Promise<string> {
  for (const sql of ['SHOW MASTER STATUS', 'SHOW BINARY LOG STATUS']) {
    try {
      const [rows] = await c.query(sql);
      const row = (rows as Array<{ File?: string; Position?: number | string }>)[0];
      if (!row?.File) throw new Error('the binary log is off (log_bin): SHOW MASTER STATUS returned nothing');
      return mysqlPosition(row.File, String(row.Position));
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_PARSE_ERROR') throw err;
    }
  }
  throw new Error('neither SHOW MASTER STATUS nor SHOW BINARY LOG STATUS is understood by the server');
}

class Reader implements MysqlReader {
  private reading = false;
  private failed = false;

  constructor(
    private readonly c: Connection,
    private readonly ep: MysqlEndpoint,
    readonly position: string,
  ) {}

  async copyOut(t: TableModel, range: ChunkRange, format: RowFormat): Promise<CopyOut> {
    if (format !== 'text') throw new Error('a MySQL source writes COPY text only');
    const cols = sourceColumns(t);
    const sql = `SELECT ${cols.map(selectExpr).join(', ')} FROM ${quoteMysql(t.schema)}.${quoteMysql(t.name)}${mysqlChunkFilter(t, range)}`;
    const key = qualifiedKey(t);
    // Values changed on the way, counted per column and kind (a column has one kind).
    const changed = new Map<string, number>();
    const encoders = cols.map((c) => copyField(c, key, () => changed.set(c.name, (changed.get(c.name) ?? 0) + 1)));
    const ep = this.ep;
    const rows = this.core().query({ sql, rowsAsArray: true }).stream({ highWaterMark: 256 });
    this.reading = true;
    rows.once('end', () => (this.reading = false));
    // Rows are gathered into chunks of about 64 kB: COPY takes them with far less overhead than a write per row.
    let pending = '';
    const toCopy = new Transform({
      writableObjectMode: true,
      readableHighWaterMark: 1 << 20,
      transform(row: unknown[], _enc, cb) {
        try {
          let line = '';
          for (let i = 0; i < encoders.length; i++) line += (i === 0 ? '' : '\t') + encoders[i]!(row[i]);
          pending += line + '\n';
          if (pending.length < 65_536) return cb();
          const out = pending;
          pending = '';
          cb(null, out);
        } catch (err) {
          cb(err as Error);
        }
      },
      flush(cb) {
        cb(null, pending || undefined);
      },
    });
    rows.once('error', (err) => {
      this.failed = true;
      toCopy.destroy(mysqlFailure(err, ep, { table: key, doing: `reading ${key}` }));
    });
    const out: CopyOut = rows.pipe(toCopy);
    // Never silent: the zero dates PostgreSQL cannot hold are counted, per column, into the ledger and the report.
    out.conversions = () => (changed.size === 0 ? undefined : [...changed].map(([col, n]) => conversionWords(cols.find((c) => c.name === col)!, n)).join('; '));
    return out;
  }

  async checksum(t: TableModel, range: ChunkRange, withChecksum: boolean): Promise<TableChecksum> {
    const cols = sourceColumns(t);
    const [r] = await this.c.query(mysqlChecksumSql(cols, `${quoteMysql(t.schema)}.${quoteMysql(t.name)}${mysqlChunkFilter(t, range)}`, withChecksum)).catch((err: unknown) => {
      this.failed = true;
      throw err;
    });
    const row = (r as Array<{ rows: string; checksum: string | null }>)[0]!;
    const { key, json } = jsonRowKey(t);
    if (row.checksum === null || json.length === 0) return { rows: row.rows, ...(row.checksum !== null ? { checksum: row.checksum } : {}), method: 'canonical-md5' };
    // JSON documents: canonical forms computed here from the documents' text (json-digest.ts).
    const digest = new JsonDigest();
    const select = [...key.map((c) => `CONVERT(${mysqlCanonical(c)} USING utf8mb4)`), ...json.map((c) => quoteMysql(c.name))].join(', ');
    const rows = this.core().query({ sql: `SELECT ${select} FROM ${quoteMysql(t.schema)}.${quoteMysql(t.name)}${mysqlChunkFilter(t, range)}`, rowsAsArray: true }).stream({ highWaterMark: 256 });
    try {
      for await (const values of rows) {
        const v = values as Array<string | null>;
        digest.addRow(v.slice(0, key.length), v.slice(key.length));
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
    return { rows: row.rows, checksum: digest.addTo(row.checksum), method: 'canonical-md5' };
  }

  /** The core connection, which streams rows with back-pressure (the promise wrapper would buffer them). */
  private core(): { query(o: { sql: string; rowsAsArray: boolean }): { stream(o: { highWaterMark: number }): Readable } } {
    return (this.c as unknown as { connection: ReturnType<Reader['core']> }).connection;
  }

  healthy(): boolean {
    return !this.reading && !this.failed;
  }

  async ping(): Promise<boolean> {
    try {
      // A source that stopped answering must not hold the pool's readers for long.
      await this.c.query({ sql: 'SELECT 1', timeout: 10_000 });
      return true;
    } catch {
      this.failed = true;
      return false;
    }
  }

  async close(): Promise<void> {
    await this.c.query('ROLLBACK').catch(() => undefined);
    await closeMysql(this.c);
  }
}

/**
 * The rows of a unit: all, or a range of an integer primary key (MySQL extents cut no other).
 * Bounds are inlined as integer literals: a string compared with an integer column would be
 * compared as a double, inexact beyond 2^53.
 */
export function mysqlChunkFilter(t: TableModel, range: ChunkRange): string {
  if (range.kind === 'whole') return '';
  if (range.kind !== 'keys') throw new Error(`${qualifiedKey(t)}: a MySQL source is read whole or by key ranges (asked for a ${range.kind} range)`);
  const cols = t.primaryKey?.columns ?? [];
  const key = cols.length === 1 ? quoteMysql(cols[0]!) : `(${cols.map(quoteMysql).join(', ')})`;
  const tuple = (values: string[]) => {
    if (values.length !== cols.length || values.some((v) => !/^-?\d+$/.test(v))) throw new Error(`${qualifiedKey(t)}: key bound ${values.join(',')} is not ${cols.length} integer(s)`);
    return values.length === 1 ? values[0]! : `(${values.join(', ')})`;
  };
  const parts = [...(range.from ? [`${key} >= ${tuple(range.from)}`] : []), ...(range.to ? [`${key} < ${tuple(range.to)}`] : [])];
  return parts.length === 0 ? '' : ` WHERE ${parts.join(' AND ')}`;
}

/** What the SELECT reads for a column: exact text for floats (the driver would parse them into numbers). */
function selectExpr(c: ColumnModel): string {
  const v = quoteMysql(c.name);
  switch (c.conversion) {
    case 'float':
    case 'double':
      return `CAST(CAST(${v} AS DOUBLE) AS CHAR)`;
    case 'year':
      return `${v} + 0`;
    default:
      return v;
  }
}

/** COPY text escapes: backslash, and the characters that end a field or a row. */
function escapeCopy(s: string): string {
  return s.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}

/** One column's value (as the driver gives it) → its COPY text field: pgTextOf's text, escaped. */
function copyField(c: ColumnModel, table: string, changed: () => void): (v: unknown) => string {
  const text = pgTextOf(c, table, changed);
  const binary = c.conversion === 'bytes' || (c.conversion === 'geometry' && c.type === 'bytea');
  if (binary) {
    // bytea's `\x` and hex: its one backslash doubled without scanning (or copying) the whole value.
    return (v) => {
      const s = text(v);
      return s === null ? '\\N' : '\\' + s;
    };
  }
  switch (c.conversion) {
    case 'boolean':
    case 'bit':
    case 'geometry':
    case 'date':
    case 'datetime':
    case 'timestamp':
      // t/f, binary digits, hex, the server's date text: nothing to escape.
      return (v) => text(v) ?? '\\N';
    default:
      return (v) => {
        const s = text(v);
        return s === null ? '\\N' : escapeCopy(s);
      };
  }
}

/**
 * Binlog row values → the PostgreSQL text the full load writes for the same row, byte for byte.
 *
 * `@vlasky/zongji` decodes a row image into JavaScript values; each is brought into the form
 * mysql2 gives the loader (reader.ts, with connection.ts's options), then pgTextOf applies the
 * same rules as the load (zero dates → NULL and counted, refusals). Where zongji's own decoding
 * is not exact, `readExactly` has it hand over the stored bytes instead, decoded here:
 *
 * - geometry: zongji parses it into points and drops the SRID → MySQL's bytes, as the loader reads them;
 * - latin1 text: zongji's cp1252 turns 0x81, 0x8D, 0x8F, 0x90 and 0x9D into U+FFFD, where
 *   MySQL's latin1 keeps them as U+0081… → decoded with MySQL's table;
 * - MySQL's binary JSON: zongji's text drops the `.0` of integral doubles and turns DECIMAL
 *   values into strings → printed as MySQL prints it (MariaDB's JSON is text and comes as it is);
 * - ENUM/SET members when zongji read them from information_schema (no FULL metadata): its
 *   naive split breaks on a member holding a comma → the members parsed as types.ts parses them.
 *
 * What zongji gives exactly, once created with BINLOG_VALUE_OPTIONS: integers (numbers, exact
 * strings beyond 2^53), DECIMAL (exact strings), dates, DATETIME, TIMESTAMP (UTC, microseconds),
 * TIME, BIT and binary strings (Buffers), utf8 text. Normalized here: FLOAT/DOUBLE (numbers →
 * the server's text of the double), YEAR 0000, TIMESTAMP past 2038 (MariaDB 11.5+), an ENUM's
 * invalid-value index 0.
 */
import type ZongJi from '@vlasky/zongji';
import type { TableMapEntry, TableMapEvent } from '@vlasky/zongji';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { sourceColumns, qualifiedKey, type ColumnModel, type TableModel } from '../../plan/schema-model';
import { pgTextOf } from './pg-text';
import { enumMembers } from './types';

/**
 * mysql2 options zongji must be created with: it reads them from its own connection to decide
 * how to decode. Without dateStrings DATETIME and TIMESTAMP become Dates (milliseconds only,
 * zero dates lost); without timezone 'Z' a TIMESTAMP is printed in the worker process's zone.
 */
export const BINLOG_VALUE_OPTIONS = { dateStrings: true, timezone: 'Z' } as const;

/** MySQL column type codes (binlog table map), as zongji's MysqlTypes numbers them. */
const T = { VARCHAR: 15, VARCHAR_COMPRESSED: 141, JSON: 245, ENUM: 247, SET: 248, BLOB: 252, STRING: 254, GEOMETRY: 255 } as const;

/** Columns readExactly has zongji hand over as stored bytes, and what those bytes are. */
type RawKind = 'geometry' | 'latin1' | 'mysql-json';

interface Prepared {
  raw: Map<string, RawKind>;
  /** Why zongji's values cannot be trusted (its options), when they cannot. */
  problem?: string;
}

const prepared = new WeakMap<TableMapEntry, Prepared>();

/**
 * Call in zongji's 'binlog' listener for every TableMap event, synchronously: the rows that
 * follow are decoded with the table map as it is when their packet arrives.
 */
export function readExactly(zongji: ZongJi, event: TableMapEvent): void {
  const entry = zongji.tableMap[event.tableId];
  // A filtered table has no entry; an entry zongji reused (information_schema path) is done.
  if (!entry?.columns || prepared.has(entry)) return;
  const raw = new Map<string, RawKind>();
  entry.columns.forEach((col, i) => {
    const schema = entry.columnSchemas[i]!;
    if (col.type === T.GEOMETRY || col.type === T.JSON) {
      // Read as a BLOB (the same length-prefixed layout): the stored bytes, undecoded.
      raw.set(col.name, col.type === T.GEOMETRY ? 'geometry' : 'mysql-json');
      col.type = T.BLOB;
      col.charset = null;
    } else if (col.type === T.ENUM) {
      schema.ENUM_VALUES ??= enumMembers(schema.COLUMN_TYPE);
    } else if (col.type === T.SET) {
      schema.SET_VALUES ??= enumMembers(schema.COLUMN_TYPE);
    } else if (col.charset === 'latin1') {
      raw.set(col.name, 'latin1');
      // zongji hands over a BLOB's bytes when it has no charset, a VARCHAR/CHAR's when its type says varbinary.
      if (col.type === T.VARCHAR || col.type === T.STRING || col.type === T.VARCHAR_COMPRESSED) schema.COLUMN_TYPE = `varbinary /* ${schema.COLUMN_TYPE}, latin1 */`;
      else col.charset = null;
    }
  });
  prepared.set(entry, { raw, ...optionsProblem(zongji) });
}

function optionsProblem(zongji: ZongJi): { problem?: string } {
  const config = zongji.connection?.config as { dateStrings?: unknown; timezone?: unknown; decimalNumbers?: unknown } | undefined;
  const wrong = [
    ...(config?.dateStrings === true ? [] : ['dateStrings is not true']),
    ...(config?.timezone === 'Z' || config?.timezone === '+00:00' ? [] : [`timezone is ${String(config?.timezone)}, not Z`]),
    ...(config?.decimalNumbers ? ['decimalNumbers is on'] : []),
  ];
  return wrong.length === 0 ? {} : { problem: `zongji was created without BINLOG_VALUE_OPTIONS (${wrong.join(', ')})` };
}

/**
 * The row encoder of a table: a binlog row (zongji's object keyed by column name) → the
 * table's non-generated columns in model order (as the loader reads them), each the UTF-8 of
 * its PostgreSQL text, or null for SQL NULL. `entry` is the row event's table map
 * (`event.tableMap[event.tableId]`), prepared by readExactly.
 */
export function binlogRowEncoder(t: TableModel, changed: (column: string) => void): (row: Record<string, unknown>, entry: TableMapEntry) => Array<Buffer | null> {
  const key = qualifiedKey(t);
  const columns = sourceColumns(t).map((c) => ({ name: c.name, encode: columnEncoder(c, key, () => changed(c.name)) }));
  return (row, entry) => {
    const how = prepared.get(entry);
    if (!how) throw new Error(`${key}: a row read with a table map readExactly did not prepare (call it on every TableMap event)`);
    if (how.problem) throw new Error(`${key}: ${how.problem}`);
    const out = new Array<Buffer | null>(columns.length);
    for (let i = 0; i < columns.length; i++) {
      const { name, encode } = columns[i]!;
      const v = row[name];
      // zongji sets every column of the table map, NULL included: one it lacks is not in the binlog's table.
      if (v === undefined && !(name in row)) throw missingColumn(key, name, entry);
      out[i] = encode(v, how.raw.get(name));
    }
    return out;
  };
}

function missingColumn(table: string, column: string, entry: TableMapEntry): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.SchemaChanged,
    nonRetryable: true,
    message: `${table}.${column} is not in the binlog's row (its table map has ${entry.columnSchemas.map((c) => c.COLUMN_NAME).join(', ')}): the table changed on the source`,
    details: [{ table, hint: 'reload the table (or the migration) so that the target has the source\'s columns' }],
  });
}

function columnEncoder(c: ColumnModel, table: string, changed: () => void): (v: unknown, raw: RawKind | undefined) => Buffer | null {
  const text = pgTextOf(c, table, changed);
  const asDriver = driverForm(c, table);
  return (v, raw) => {
    const s = text(asDriver(v, raw));
    return s === null ? null : Buffer.from(s, 'utf8');
  };
}

/** zongji's value → the value mysql2 gives the loader for the column (reader.ts's SELECT). */
function driverForm(c: ColumnModel, table: string): (v: unknown, raw: RawKind | undefined) => unknown {
  const cannot = (v: unknown, why = `which dbferry does not read as ${c.sourceType ?? c.type}`): never => {
    throw ApplicationFailure.create({
      type: FailureType.SourceCannotSend,
      nonRetryable: true,
      message: `${table}.${c.name}: the binlog reader gave ${describe(v)}, ${why}`,
      details: [{ table, hint: 'report this to dbferry with the column\'s type; reloading the table reads it through the server instead' }],
    });
  };
  // undefined is what zongji gives for a type it cannot decode (it emits an error too).
  const known = (v: unknown) => (v === undefined ? cannot(v) : v);
  switch (c.conversion) {
    case 'float':
    case 'double':
      // The loader selects CAST(CAST(v AS DOUBLE) AS CHAR); a FLOAT's 4 bytes are exact as a double.
      return (v) => (v === null ? null : typeof v === 'number' ? mysqlDoubleText(v) : cannot(v));
    case 'year':
      // zongji adds 1900 to the stored byte, whose 0 is YEAR 0000 (1900 is outside YEAR's range).
      return (v) => (v === 1900 ? 0 : known(v));
    case 'date':
    case 'datetime':
      return (v) => (v === null || typeof v === 'string' ? v : cannot(v, 'not the server\'s text (zongji needs BINLOG_VALUE_OPTIONS)'));
    case 'timestamp':
      return (v) => (v === null ? null : typeof v === 'string' ? unsignedTimestamp(v) : cannot(v, 'not the server\'s text (zongji needs BINLOG_VALUE_OPTIONS)'));
    case 'geometry':
      return (v, raw) => (v === null || (Buffer.isBuffer(v) && raw === 'geometry') ? v : cannot(v, 'not the stored bytes (readExactly makes zongji hand them over)'));
    case 'json':
      return (v, raw) => {
        if (raw !== 'mysql-json' || !Buffer.isBuffer(v)) return text(known(v), raw);
        try {
          return mysqlJsonText(v);
        } catch (err) {
          return cannot(v, `not MySQL's binary JSON (${(err as Error).message})`);
        }
      };
    case 'enum':
      // Index 0 is the value MySQL stores for an invalid member (outside strict mode); it reads as ''.
      return (v, raw) => (v === undefined ? '' : text(v, raw));
    case 'text':
    case 'set':
    case undefined:
      return (v, raw) => text(known(v), raw);
    default:
      // Integers (numbers, exact strings beyond 2^53), DECIMAL (exact strings), BIT and binary
      // strings (Buffers), TIME (strings), booleans (numbers): as mysql2 gives them.
      return known;
  }

  function text(v: unknown, raw: RawKind | undefined): unknown {
    if (!Buffer.isBuffer(v)) return v;
    return raw === 'latin1' ? latin1Text(v) : cannot(v, 'bytes of a charset the binlog reader cannot decode');
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'no value';
  if (Buffer.isBuffer(v)) return `${v.length} bytes`;
  if (v instanceof Date) return `a Date (${Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString()})`;
  return `a ${typeof v} (${String(v).slice(0, 40)})`;
}

/**
 * MySQL's latin1 is cp1252, except for the five bytes cp1252 leaves undefined, which it maps to
 * the C1 controls of the same number (as WHATWG's windows-1252 does; Node's TextDecoder and
 * iconv-lite's cp1252 do not). The characters of 0x80..0x9F.
 */
const LATIN1_80_9F =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

export function latin1Text(b: Buffer): string {
  return b.toString('latin1').replace(/[\x80-\x9f]/g, (ch) => LATIN1_80_9F[ch.charCodeAt(0) - 0x80]!);
}

/**
 * zongji reads a TIMESTAMP's seconds as signed; MariaDB 11.5+ stores them unsigned (up to
 * 2106). No TIMESTAMP is before 1970, so a year before 1970 is one 2^32 seconds too early.
 */
function unsignedTimestamp(s: string): string {
  if (s >= '1970' || s.startsWith('0000')) return s;
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?$/.exec(s);
  if (!m) return s;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) + 2 ** 32 * 1000;
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + (m[7] ?? '');
}

/**
 * A double as MySQL and MariaDB print it (my_gcvt, as CAST(… AS CHAR) and JSON text do): the
 * shortest digits that read back as the same double (JavaScript finds the same ones), in
 * positional notation when the decimal point is within 15 places of them, else `1.5e-20`.
 * Negative zero prints as 0 (a FLOAT holds one when a tiny negative value rounds to it).
 */
export function mysqlDoubleText(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`${x} is not a MySQL double`);
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const point = Number(exponent) + 1; // digits before the decimal point (dtoa's decpt)
  const len = digits.length;
  if (point >= -14 && (point <= 15 || len > point)) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point < len) return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
    return sign + digits + '0'.repeat(point - len);
  }
  return `${sign}${digits[0]}${len > 1 ? '.' + digits.slice(1) : ''}e${point - 1}`;
}

/**
 * MySQL's binary JSON (json_binary.h) → the text MySQL prints for it (Json_wrapper::to_string),
 * which is what mysql2 gives the loader. An empty value is MySQL's JSON null (Field_json::val_json).
 */
export function mysqlJsonText(b: Buffer): string {
  return b.length === 0 ? 'null' : jsonValue(b, b[0]!, 1);
}

const JSONB = { SMALL_OBJECT: 0, LARGE_OBJECT: 1, SMALL_ARRAY: 2, LARGE_ARRAY: 3, LITERAL: 4, INT16: 5, UINT16: 6, INT32: 7, UINT32: 8, INT64: 9, UINT64: 10, DOUBLE: 11, STRING: 12, OPAQUE: 15 } as const;

/** The value of `type` stored at `at` (a value entry's inlined bytes, or the value itself). */
function jsonValue(b: Buffer, type: number, at: number): string {
  switch (type) {
    case JSONB.SMALL_OBJECT:
    case JSONB.LARGE_OBJECT:
    case JSONB.SMALL_ARRAY:
    case JSONB.LARGE_ARRAY:
      return jsonContainer(b, at, type === JSONB.LARGE_OBJECT || type === JSONB.LARGE_ARRAY, type <= JSONB.LARGE_OBJECT);
    case JSONB.LITERAL:
      return (['null', 'true', 'false'] as const)[b[at]!] ?? bad(`literal ${b[at]}`);
    case JSONB.INT16:
      return String(b.readInt16LE(at));
    case JSONB.UINT16:
      return String(b.readUInt16LE(at));
    case JSONB.INT32:
      return String(b.readInt32LE(at));
    case JSONB.UINT32:
      return String(b.readUInt32LE(at));
    case JSONB.INT64:
      return String(b.readBigInt64LE(at));
    case JSONB.UINT64:
      return String(b.readBigUInt64LE(at));
    case JSONB.DOUBLE: {
      // MySQL marks an integral double as one: 1.0, not 1.
      const s = mysqlDoubleText(b.readDoubleLE(at));
      return /[.e]/.test(s) ? s : s + '.0';
    }
    case JSONB.STRING: {
      const [n, start] = varLength(b, at);
      return jsonString(b.toString('utf8', start, start + n));
    }
    case JSONB.OPAQUE: {
      const [n, start] = varLength(b, at + 1);
      return jsonOpaque(b[at]!, b.subarray(start, start + n));
    }
    default:
      return bad(`type ${type}`);
  }
}

function jsonContainer(b: Buffer, at: number, large: boolean, object: boolean): string {
  const size = large ? 4 : 2;
  const read = (p: number) => (large ? b.readUInt32LE(p) : b.readUInt16LE(p));
  const count = read(at);
  const keys = at + 2 * size;
  const values = keys + (object ? count * (size + 2) : 0);
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const entry = values + i * (1 + size);
    const type = b[entry]!;
    // Literals and 16-bit integers are inlined in the entry, 32-bit ones too in a large container.
    const inlined = type === JSONB.LITERAL || type === JSONB.INT16 || type === JSONB.UINT16 || (large && (type === JSONB.INT32 || type === JSONB.UINT32));
    const value = jsonValue(b, type, inlined ? entry + 1 : at + read(entry + 1));
    if (!object) {
      parts.push(value);
      continue;
    }
    const k = keys + i * (size + 2);
    const start = at + read(k);
    parts.push(`${jsonString(b.toString('utf8', start, start + b.readUInt16LE(k + size)))}: ${value}`);
  }
  return object ? `{${parts.join(', ')}}` : `[${parts.join(', ')}]`;
}

/** A length of 7 bits a byte, low first, the high bit saying another byte follows → [length, where the data starts]. */
function varLength(b: Buffer, at: number): [number, number] {
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const byte = b[at + i]!;
    n += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return [n, at + i + 1];
  }
  return bad('length');
}

/** A JSON string as MySQL quotes it (json_dom.cc double_quote; it leaves 0x1f as it is). */
function jsonString(s: string): string {
  const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return `"${s.replace(/["\\\x00-\x1e]/g, (ch) => ESCAPES[ch] ?? `\\u00${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`;
}

/** A value of another MySQL type inside a document (CAST(… AS JSON) of a DECIMAL, a DATETIME…). */
function jsonOpaque(fieldType: number, data: Buffer): string {
  switch (fieldType) {
    case 246: // NEWDECIMAL: precision, scale, then the binary decimal
      return binaryDecimal(data.subarray(2), data[0]!, data[1]!);
    case 10: // DATE
    case 12: // DATETIME
    case 7: // TIMESTAMP
    case 11: // TIME
      return `"${packedTemporal(data.readBigInt64LE(0), fieldType)}"`;
    default:
      return `"base64:type${fieldType}:${data.toString('base64')}"`;
  }
}

/** MySQL's binary DECIMAL (decimal2bin): groups of 9 digits in 4 bytes, big-endian, the sign in the first bit. */
function binaryDecimal(bytes: Buffer, precision: number, scale: number): string {
  const DIG2BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
  const negative = (bytes[0]! & 0x80) === 0;
  const b = Buffer.from(bytes);
  b[0] ^= 0x80;
  if (negative) for (let i = 0; i < b.length; i++) b[i] ^= 0xff;
  let at = 0;
  const group = (digits: number) => {
    if (digits === 0) return '';
    const n = DIG2BYTES[digits]!;
    const v = b.readUIntBE(at, n);
    at += n;
    return String(v).padStart(digits, '0');
  };
  const intg = precision - scale;
  let whole = group(intg % 9);
  for (let i = 0; i < Math.floor(intg / 9); i++) whole += group(9);
  let fraction = '';
  for (let i = 0; i < Math.floor(scale / 9); i++) fraction += group(9);
  fraction += group(scale % 9);
  whole = whole.replace(/^0+(?=\d)/, '') || '0';
  return `${negative ? '-' : ''}${whole}${scale > 0 ? '.' + fraction : ''}`;
}

/** A packed temporal (my_time.h: TIME_to_longlong_*_packed) as my_TIME_to_str prints it with 6 decimals. */
function packedTemporal(packed: bigint, fieldType: number): string {
  const negative = packed < 0n;
  const p = negative ? -packed : packed;
  const micro = String(Number(p % (1n << 24n))).padStart(6, '0');
  const whole = p >> 24n;
  const two = (n: bigint | number) => String(n).padStart(2, '0');
  if (fieldType === 11) {
    const hms = whole;
    return `${negative ? '-' : ''}${two(hms >> 12n)}:${two((hms >> 6n) & 63n)}:${two(hms & 63n)}.${micro}`;
  }
  const ymd = whole >> 17n;
  const hms = whole & ((1n << 17n) - 1n);
  const ym = ymd >> 5n;
  const date = `${String(ym / 13n).padStart(4, '0')}-${two(ym % 13n)}-${two(ymd & 31n)}`;
  return fieldType === 10 ? date : `${date} ${two(hms >> 12n)}:${two((hms >> 6n) & 63n)}:${two(hms & 63n)}.${micro}`;
}

function bad(what: string): never {
  throw new Error(`a binary JSON value MySQL does not write (${what})`);
}

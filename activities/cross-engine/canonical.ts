/**
 * The cross-engine checksum (`ChecksumMethod` `canonical-md5`): each value in a canonical text
 * form that MySQL/MariaDB computes in SQL over the source's column and PostgreSQL computes in
 * SQL over the converted column, so that a row equal after the documented conversions sums
 * equal and one changed value anywhere (a microsecond, a trailing space, one byte) does not.
 *
 * A row is `len:value` per column (`-` for NULL) joined by commas, hashed with MD5 (both
 * engines have it), of which the first 15 hex digits (60 bits, so the sum stays positive in a
 * signed 64-bit value) are summed exactly (DECIMAL in MySQL, numeric in PostgreSQL).
 *
 * The forms, by the value kind the MySQL column converts to (mysql/types.ts):
 * - integers, decimal, year: the number's text (decimal keeps its scale on both sides);
 *   boolean: 1 or 0 (a tinyint(1) holding 2 on the source stays 2 and compares different).
 * - float and double: the shortest round-trip digits (both engines print them) and the decimal
 *   magnitude (`mysqlFloatText`). A float is widened to double on both sides (exactly).
 * - text, enum, set: the characters (MySQL's converted to utf8mb4 first, so MD5 sees the same bytes).
 * - bytes: lowercase hex. bit(n): n binary digits.
 * - geometry into bytea (no PostGIS on the target): lowercase hex of MySQL's form. Into a
 *   PostGIS geometry: `<srid>:<hex of the WKB, little-endian>`, MySQL's from its stored bytes
 *   (the SRID's 4 bytes, then the WKB, which MySQL writes little-endian), PostgreSQL's from
 *   ST_SRID and ST_AsBinary(..., 'NDR').
 * - date, datetime, timestamp: `YYYY-MM-DD[ HH:MM:SS.ffffff]` (timestamp in UTC); a zero or
 *   invalid date is NULL on both sides (the load writes NULL for it).
 * - time → interval: total microseconds.
 * - json → jsonb: here only whether there is a document; the documents are compared exactly
 *   outside SQL (json-digest.ts: neither engine's SQL can write the other's JSON form), and
 *   their digest is added to this checksum.
 */
import type { ColumnModel } from '../../plan/schema-model';
import { quoteIdent } from '../../plan/sql-names';
import { postgisSchemaOf } from './spatial';

/** MySQL's identifier quoting. */
export function quoteMysql(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

const ZERO_DATE = (v: string) => `(YEAR(${v}) = 0 OR MONTH(${v}) = 0 OR DAYOFMONTH(${v}) = 0)`;

/**
 * A float as `[-]<significant digits>e<floor(log10 |v|)>`: the digits from the engine's own
 * shortest round-trip text (whatever its notation: MySQL writes 1e15 and 0.00001 where
 * PostgreSQL writes 1e+15 and 1e-05), the magnitude from the value. The text is read once per
 * value (the digits are all it gives), which keeps the MySQL side cheap: a rewriting of the
 * notation in string functions alone cost 6 µs a value there. Two values with the same digits
 * and magnitude are the same value, so this never says equal for different ones.
 */
function mysqlFloatText(v: string): string {
  const digits = `TRIM(TRAILING '0' FROM TRIM(LEADING '0' FROM REPLACE(SUBSTRING_INDEX(TRIM(LEADING '-' FROM CAST(CAST(${v} AS DOUBLE) AS CHAR)), 'e', 1), '.', '')))`;
  return `IF(${v} = 0, '0', CONCAT(IF(${v} < 0, '-', ''), ${digits}, 'e', CAST(FLOOR(LOG10(ABS(CAST(${v} AS DOUBLE)))) AS SIGNED)))`;
}

/** The same in PostgreSQL SQL. */
function pgFloatText(v: string): string {
  const digits = `rtrim(ltrim(replace(split_part(ltrim(${v}::float8::text, '-'), 'e', 1), '.', ''), '0'), '0')`;
  return `CASE WHEN ${v} = 0 THEN '0' ELSE (CASE WHEN ${v} < 0 THEN '-' ELSE '' END) || ${digits} || 'e' || floor(log(abs(${v}::float8)))::bigint::text END`;
}

/** A column's canonical text on the MySQL source (`col` as stored there), NULL for NULL. */
export function mysqlCanonical(c: ColumnModel): string {
  const v = quoteMysql(c.name);
  switch (c.conversion) {
    case 'boolean':
    case 'integer':
    case 'decimal':
      return `CAST(${v} AS CHAR)`;
    case 'year':
      return `CAST(${v} + 0 AS CHAR)`;
    case 'float':
    case 'double':
      return `IF(${v} IS NULL, NULL, ${mysqlFloatText(v)})`;
    case 'bit':
      return `LPAD(BIN(${v} + 0), ${bitLength(c.type)}, '0')`;
    case 'bytes':
      return `LOWER(HEX(${v}))`;
    case 'geometry':
      // From the stored bytes, not ST_AsBinary: MySQL 8 writes a geographic SRS's WKB in
      // latitude-longitude order, while it stores (and the load carries) longitude first.
      if (c.type === 'bytea') return `LOWER(HEX(${v}))`;
      return `CONCAT(CONV(HEX(REVERSE(SUBSTRING(${v}, 1, 4))), 16, 10), ':', LOWER(HEX(SUBSTRING(${v}, 5))))`;
    case 'date':
      return `IF(${ZERO_DATE(v)}, NULL, DATE_FORMAT(${v}, '%Y-%m-%d'))`;
    case 'datetime':
    case 'timestamp':
      return `IF(${ZERO_DATE(v)}, NULL, DATE_FORMAT(${v}, '%Y-%m-%d %H:%i:%s.%f'))`;
    case 'time':
      return `CAST(TIME_TO_SEC(${v}) * 1000000 AS DECIMAL(30,0))`;
    case 'json':
      // The documents themselves are compared by json-digest.ts; here only whether there is one.
      return `IF(${v} IS NULL, NULL, 'json')`;
    default:
      return `CONVERT(${v} USING utf8mb4)`;
  }
}

/** The same canonical text of the converted column on the PostgreSQL target. */
export function pgCanonical(c: ColumnModel): string {
  const v = quoteIdent(c.name);
  switch (c.conversion) {
    case 'boolean':
      return `CASE WHEN ${v} THEN '1' WHEN NOT ${v} THEN '0' END`;
    case 'integer':
    case 'decimal':
    case 'year':
      return `${v}::text`;
    case 'float':
    case 'double':
      return `CASE WHEN ${v} IS NOT NULL THEN ${pgFloatText(v)} END`;
    case 'bit':
      return `${v}::text`;
    case 'bytes':
      return `encode(${v}, 'hex')`;
    case 'geometry': {
      if (c.type === 'bytea') return `encode(${v}, 'hex')`;
      const postgis = postgisSchemaOf(c.type);
      return `${postgis}.${quoteIdent('st_srid')}(${v})::text || ':' || encode(${postgis}.${quoteIdent('st_asbinary')}(${v}, 'NDR'), 'hex')`;
    }
    case 'date':
      return `to_char(${v}, 'YYYY-MM-DD')`;
    case 'datetime':
      return `to_char(${v}, 'YYYY-MM-DD HH24:MI:SS.US')`;
    case 'timestamp':
      return `to_char(${v} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
    case 'time':
      return `(extract(epoch FROM ${v}) * 1000000)::numeric(30,0)::text`;
    case 'json':
      return `CASE WHEN ${v} IS NOT NULL THEN 'json' END`;
    default:
      // character(n) reads without its padding, as MySQL's CHAR does.
      return `${v}::text`;
  }
}

function bitLength(type: string): number {
  return Number(/\((\d+)\)/.exec(type)?.[1] ?? 1);
}

/** `len:value` per column (`-` for NULL; a NULL value makes the concatenation NULL on both engines), comma-joined. */
function rowText(values: string[], length: string, concat: (parts: string[]) => string, coalesce: string): string {
  const pieces = values.map((v) => `${coalesce}(${concat([`${length}(${v})`, "':'", v])}, '-')`);
  return concat(pieces.flatMap((p, i) => (i === 0 ? [p] : ["','", p])));
}

/** MySQL: `SELECT rows, checksum` of a table (or the rows `where` selects), every value canonical. */
export function mysqlChecksumSql(columns: ColumnModel[], from: string, withChecksum: boolean): string {
  if (!withChecksum || columns.length === 0) return `SELECT CAST(COUNT(*) AS CHAR) AS \`rows\`, NULL AS checksum FROM ${from}`;
  const row = rowText(
    columns.map(mysqlCanonical),
    'CHAR_LENGTH',
    (parts) => `CONCAT(${parts.join(', ')})`,
    'COALESCE',
  );
  return `SELECT CAST(COUNT(*) AS CHAR) AS \`rows\`,
                 CAST(COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONVERT(${row} USING utf8mb4)), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR) AS checksum
            FROM ${from}`;
}

/** PostgreSQL: the same over the converted table. */
export function pgCanonicalChecksumSql(columns: ColumnModel[], from: string, withChecksum: boolean): string {
  if (!withChecksum || columns.length === 0) return `SELECT count(*)::text AS rows, NULL::text AS checksum ${from}`;
  const row = rowText(
    columns.map(pgCanonical),
    'char_length',
    (parts) => `(${parts.join(' || ')})`,
    'coalesce',
  );
  return `SELECT count(*)::text AS rows,
                 coalesce(sum(('x' || lpad(substr(md5(${row}), 1, 15), 16, '0'))::bit(64)::bigint), 0)::text AS checksum
            ${from}`;
}

/**
 * MySQL/MariaDB column types → PostgreSQL, the mapping README's "MySQL and MariaDB sources"
 * table documents. Pure: one information_schema.COLUMNS row in, the target column, the checks
 * that keep the source's range, and what the reader must do with the value.
 *
 * Integers are widened when PostgreSQL has no type of the same range (unsigned, tinyint,
 * mediumint) and a CHECK keeps the source's range, so the target refuses what the source would.
 */
import { quoteIdent, quoteLiteral } from '../../plan/sql-names';

/** How a value of the column is read from MySQL and written into COPY text (reader.ts, canonical.ts). */
export type ValueKind =
  | 'integer'
  | 'boolean'
  | 'decimal'
  | 'float'
  | 'double'
  | 'bit'
  | 'text'
  | 'bytes'
  | 'enum'
  | 'set'
  | 'json'
  | 'date'
  | 'datetime'
  | 'timestamp'
  | 'time'
  | 'year'
  | 'geometry';

export interface MysqlColumn {
  name: string;
  /** information_schema DATA_TYPE, lowercase: `int`, `varchar`, `enum`… */
  dataType: string;
  /** COLUMN_TYPE: `int(10) unsigned`, `enum('a','b')`, `tinyint(1)`, `decimal(65,30)`… */
  columnType: string;
  nullable: boolean;
  /** COLUMN_DEFAULT as information_schema gives it (MariaDB quotes string literals; MySQL does not). */
  default: string | null;
  /** EXTRA: `auto_increment`, `on update current_timestamp()`, `STORED GENERATED`, `VIRTUAL GENERATED`… */
  extra: string;
  charMaxLength: string | null;
  numericPrecision: string | null;
  numericScale: string | null;
  datetimePrecision: string | null;
  charset: string | null;
  generationExpression: string | null;
  /** MariaDB's JSON is LONGTEXT with CHECK (json_valid(col)): the caller knows it from the checks. */
  isJson: boolean;
  /**
   * MySQL 8's COLUMNS.SRS_ID: the one SRID a spatial column accepts (its `SRID` attribute).
   * MariaDB has no such restriction (its REF_SYSTEM_ID is not enforced), so none is given there.
   */
  srsId?: string | null;
}

export interface ConvertedColumn {
  type: string;
  /** The source's type for the model (ColumnModel.sourceType): COLUMN_TYPE, with MySQL 8's `SRID n` on a spatial column. */
  sourceType: string;
  kind: ValueKind;
  /** CHECK bodies (without the CHECK keyword's name) keeping the source's domain on the target. */
  checks: string[];
  /** The default as PostgreSQL SQL, when it converts. */
  default?: string;
  autoIncrement: boolean;
  onUpdateCurrentTimestamp: boolean;
  /** Something a person should know (a default or generated expression not carried). */
  notes: string[];
}

const INT_RANGES: Record<string, { signed: [string, string]; unsigned: [string, string]; pg: string; pgUnsigned: string }> = {
  tinyint: { signed: ['-128', '127'], unsigned: ['0', '255'], pg: 'smallint', pgUnsigned: 'smallint' },
  smallint: { signed: ['-32768', '32767'], unsigned: ['0', '65535'], pg: 'smallint', pgUnsigned: 'integer' },
  mediumint: { signed: ['-8388608', '8388607'], unsigned: ['0', '16777215'], pg: 'integer', pgUnsigned: 'integer' },
  int: { signed: ['-2147483648', '2147483647'], unsigned: ['0', '4294967295'], pg: 'integer', pgUnsigned: 'bigint' },
  integer: { signed: ['-2147483648', '2147483647'], unsigned: ['0', '4294967295'], pg: 'integer', pgUnsigned: 'bigint' },
  bigint: { signed: ['-9223372036854775808', '9223372036854775807'], unsigned: ['0', '18446744073709551615'], pg: 'bigint', pgUnsigned: 'numeric(20,0)' },
};
/** PostgreSQL's own range per type: a CHECK is needed only where the source's is narrower. */
const PG_RANGES: Record<string, [string, string]> = {
  smallint: ['-32768', '32767'],
  integer: ['-2147483648', '2147483647'],
  bigint: ['-9223372036854775808', '9223372036854775807'],
};

const GEOMETRY = new Set(['geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection', 'geomcollection']);

/** The quoted members of `enum('a','it''s')` / `set(…)`, unescaped. */
export function enumMembers(columnType: string): string[] {
  const body = columnType.slice(columnType.indexOf('(') + 1, columnType.lastIndexOf(')'));
  const out: string[] = [];
  const re = /'((?:[^'\\]|''|\\.)*)'/g;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    out.push(m[1]!.replace(/''/g, "'").replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', '0': '\0' })[c] ?? c));
  }
  return out;
}

export function convertColumn(c: MysqlColumn): ConvertedColumn {
  const col = quoteIdent(c.name);
  const unsigned = /\bunsigned\b/i.test(c.columnType);
  const out: ConvertedColumn = { type: '', sourceType: c.columnType, kind: 'text', checks: [], autoIncrement: /auto_increment/i.test(c.extra), onUpdateCurrentTimestamp: /on update current_timestamp/i.test(c.extra), notes: [] };
  const fsp = (p: string | null) => (p !== null && p !== '' ? `(${Number(p)})` : '');
  const t = c.dataType.toLowerCase();
  const range = INT_RANGES[t];
  if (t === 'tinyint' && /^tinyint\(1\)$/i.test(c.columnType.trim())) {
    out.type = 'boolean';
    out.kind = 'boolean';
  } else if (range) {
    out.type = unsigned ? range.pgUnsigned : range.pg;
    out.kind = 'integer';
    let [lo, hi] = unsigned ? range.unsigned : range.signed;
    if (out.type === 'numeric(20,0)' && out.autoIncrement) {
      // An identity must be an integer type: a counter past 2^63 - 1 would not load (the load says so).
      out.type = 'bigint';
      hi = '9223372036854775807';
      out.notes.push(`${c.name} (bigint unsigned AUTO_INCREMENT) becomes bigint: values above 9223372036854775807 cannot be loaded`);
    }
    const pg = PG_RANGES[out.type];
    if (!pg || pg[0] !== lo || pg[1] !== hi) out.checks.push(`${col} BETWEEN ${lo} AND ${hi}`);
  } else if (t === 'decimal' || t === 'numeric') {
    out.type = `numeric(${Number(c.numericPrecision)},${Number(c.numericScale ?? 0)})`;
    out.kind = 'decimal';
    if (unsigned) out.checks.push(`${col} >= 0`);
  } else if (t === 'float') {
    out.type = 'real';
    out.kind = 'float';
    if (unsigned) out.checks.push(`${col} >= 0`);
  } else if (t === 'double' || t === 'real') {
    out.type = 'double precision';
    out.kind = 'double';
    if (unsigned) out.checks.push(`${col} >= 0`);
  } else if (t === 'bit') {
    out.type = `bit(${Number(c.numericPrecision ?? 1)})`;
    out.kind = 'bit';
  } else if (c.isJson || t === 'json') {
    out.type = 'jsonb';
    out.kind = 'json';
  } else if (t === 'char') {
    out.type = `character(${Number(c.charMaxLength)})`;
  } else if (t === 'varchar') {
    out.type = `character varying(${Number(c.charMaxLength)})`;
  } else if (t === 'tinytext' || t === 'text' || t === 'mediumtext' || t === 'longtext') {
    out.type = 'text';
  } else if (['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob'].includes(t)) {
    out.type = 'bytea';
    out.kind = 'bytes';
  } else if (t === 'enum' || t === 'set') {
    const members = enumMembers(c.columnType);
    out.type = 'text';
    out.kind = t;
    const list = members.map(quoteLiteral).join(', ');
    // '' is the value MySQL stores for an invalid enum member outside strict mode; a set is
    // its members in declaration order, comma-separated (a member cannot hold a comma).
    out.checks.push(t === 'enum' ? `${col} IN (${['', ...members].map(quoteLiteral).join(', ')})` : `${col} = '' OR string_to_array(${col}, ',') <@ ARRAY[${list}]::text[]`);
  } else if (t === 'date') {
    out.type = 'date';
    out.kind = 'date';
  } else if (t === 'datetime') {
    out.type = `timestamp${fsp(c.datetimePrecision)} without time zone`;
    out.kind = 'datetime';
  } else if (t === 'timestamp') {
    out.type = `timestamp${fsp(c.datetimePrecision)} with time zone`;
    out.kind = 'timestamp';
  } else if (t === 'time') {
    // MySQL's TIME is a duration from -838:59:59 to 838:59:59; PostgreSQL's time is a time of day.
    out.type = `interval${fsp(c.datetimePrecision)}`;
    out.kind = 'time';
  } else if (t === 'year') {
    out.type = 'smallint';
    out.kind = 'year';
  } else if (GEOMETRY.has(t)) {
    // The portable form (MySQL's own: the SRID, 4 bytes little-endian, then the WKB). The target
    // decides: where it has PostGIS, create-tables makes the column a geometry (cross-engine/spatial.ts).
    out.type = 'bytea';
    out.kind = 'geometry';
    // As MySQL's SHOW CREATE TABLE writes it: the target's column keeps the restriction.
    if (c.srsId !== undefined && c.srsId !== null && c.srsId !== '') out.sourceType = `${c.columnType} SRID ${Number(c.srsId)}`;
  } else {
    throw new UnsupportedType(c.name, c.columnType);
  }
  const def = convertDefault(c, out);
  if (def !== undefined) out.default = def;
  if (c.generationExpression) out.notes.push(`generated column ${c.name} (${c.generationExpression}) is migrated as a plain column with its values`);
  return out;
}

export class UnsupportedType extends Error {
  constructor(
    readonly column: string,
    readonly columnType: string,
  ) {
    super(`column ${column} has type ${columnType}, which dbferry does not convert`);
  }
}

/**
 * A default as PostgreSQL SQL: constants of the column's type and CURRENT_TIMESTAMP. MariaDB
 * 10.2.7+ quotes string literals in COLUMN_DEFAULT and says NULL for no default; MySQL gives the
 * bare value. Anything else (an expression default) is noted, not carried.
 */
function convertDefault(c: MysqlColumn, out: ConvertedColumn): string | undefined {
  const raw = c.default;
  if (raw === null || raw === 'NULL' || out.autoIncrement || c.generationExpression) return undefined;
  if (/^current_timestamp(\(\d*\))?$/i.test(raw)) return out.kind === 'time' ? undefined : out.kind === 'date' ? 'CURRENT_DATE' : 'CURRENT_TIMESTAMP';
  const quoted = /^'(.*)'$/s.exec(raw);
  const value = quoted ? quoted[1]!.replace(/''/g, "'").replace(/\\\\/g, '\\') : raw;
  if (/^(date|datetime|timestamp)$/.test(c.dataType) && /^0000-00-00/.test(value)) {
    out.notes.push(`default ${raw} of ${c.name} is a zero date: no default on the target`);
    return undefined;
  }
  switch (out.kind) {
    case 'integer':
    case 'decimal':
    case 'float':
    case 'double':
    case 'year':
      if (/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(value)) return value;
      break;
    case 'boolean':
      if (value === '0' || value === '1') return value === '1' ? 'true' : 'false';
      break;
    case 'bit': {
      const m = /^b'([01]+)'$/i.exec(raw);
      if (m) return `B'${m[1]!.padStart(Number(c.numericPrecision ?? 1), '0')}'`;
      break;
    }
    case 'text':
    case 'enum':
    case 'set':
    case 'date':
    case 'datetime':
    case 'time':
      if (quoted || !/[()]/.test(raw)) return `${quoteLiteral(value)}::${out.type}`;
      break;
    case 'timestamp':
      // A constant timestamp default is in the server's time zone: not carried as a constant.
      break;
    default:
      break;
  }
  out.notes.push(`default ${raw} of ${c.name} is not converted (set it on the target if the application relies on it)`);
  return undefined;
}

/**
 * The tests' own fingerprint of a MySQL table and of its PostgreSQL copy, independent of
 * dbferry's code: each side read as an application reads it (mysql2, node-postgres), each value
 * normalized in JavaScript by the conversion rules README documents, rows sorted. Equal lists
 * mean an application reads the same data on both sides.
 */
import type { Connection } from 'mysql2/promise';
import { Client, types } from 'pg';

type Col = { name: string; dataType: string; columnType: string };

async function columnsOf(my: Connection, db: string, table: string): Promise<Col[]> {
  const [rows] = await my.query(
    'SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [db, table],
  );
  const [json] = await my.query(
    "SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
    [db, table],
  ).catch(() => [[]]);
  const jsonCols = new Set((json as Array<{ clause: string }>).map((r) => /`(.*)`/.exec(r.clause)?.[1]));
  return (rows as Col[]).map((c) => (jsonCols.has(c.name) ? { ...c, dataType: 'json' } : c));
}

const q = (n: string) => '`' + n.replace(/`/g, '``') + '`';

/**
 * A JSON number's exact value as `0.<digits>e<exponent>` (zero as `0`), by string arithmetic,
 * never through a double: `1.5e300` and jsonb's 301 digits of it are one number.
 */
function exactNumber(t: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(t)!;
  let digits = m[2]! + (m[3] ?? '');
  let exp = BigInt(m[4] ?? '0') + BigInt(m[2]!.length);
  const lead = /^0*/.exec(digits)![0].length;
  digits = digits.slice(lead).replace(/0+$/, '');
  exp -= BigInt(lead);
  return digits === '' ? '0' : `${m[1]}0.${digits}e${exp}`;
}

/** A JSON text in one canonical form: keys sorted, no spaces, numbers by their exact value (never through a double). */
export function canonicalJson(text: string): string {
  let i = 0;
  const ws = () => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const value = (): string => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const entries: Array<[string, string]> = [];
      ws();
      if (text[i] === '}') {
        i++;
        return '{}';
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        i++; // :
        entries.push([k, value()]);
        ws();
        if (text[i++] === '}') break;
      }
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      return '{' + entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',') + '}';
    }
    if (ch === '[') {
      i++;
      const items: string[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return '[]';
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i++] === ']') break;
      }
      return '[' + items.join(',') + ']';
    }
    if (ch === '"') return JSON.stringify(str());
    const m = /^(true|false|null|-?\d+(\.\d+)?([eE][+-]?\d+)?)/.exec(text.slice(i));
    if (!m) throw new Error(`not JSON at ${i}: ${text.slice(0, 200)}`);
    i += m[0].length;
    return /^[tfn]/.test(m[0]) ? m[0] : exactNumber(m[0]);
  };
  const str = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  return value();
}

const ZERO = /^0000-|^\d{4}-00-|^\d{4}-\d{2}-00/;
const micros = (frac: string | undefined) => (frac ?? '').padEnd(6, '0').slice(0, 6);

/** `YYYY-MM-DD HH:MM:SS[.f]` → with six fraction digits. */
function dateTime(s: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d+))?/.exec(s)!;
  return `${m[1]} ${m[2]}.${micros(m[3])}`;
}

/** A time or interval `[-]H:MM:SS[.f]` → total microseconds. */
function duration(s: string): string {
  const m = /^(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`unexpected duration ${s}`);
  const total = ((BigInt(m[2]!) * 60n + BigInt(m[3]!)) * 60n + BigInt(m[4]!)) * 1_000_000n + BigInt(micros(m[5]));
  return (m[1] ? -total : total).toString();
}

/** MySQL local time (the server's zone, as an application's session reads a TIMESTAMP) → UTC. */
function toUtc(local: string, offsetMinutes: number): string {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?/.exec(local)!;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - offsetMinutes * 60_000;
  return new Date(t).toISOString().replace('T', ' ').slice(0, 19) + '.' + micros(m[7]);
}

function bits(b: Buffer, n: number): string {
  let s = '';
  for (const byte of b) s += byte.toString(2).padStart(8, '0');
  return s.slice(-n).padStart(n, '0');
}

/**
 * Every row of a MySQL table, each value normalized, sorted. `my` must read values as text
 * (dateStrings, supportBigNumbers and bigNumberStrings, jsonStrings, decimalNumbers false).
 */
export async function mysqlRowsAsApplicationReads(my: Connection, db: string, table: string): Promise<string[]> {
  const cols = await columnsOf(my, db, table);
  const [[tz]] = (await my.query("SELECT TIME_TO_SEC(TIMEDIFF(NOW(), UTC_TIMESTAMP())) / 60 AS m")) as unknown as [Array<{ m: string }>];
  const offset = Math.round(Number(tz!.m));
  // The binary protocol (a prepared statement), as most drivers read: FLOAT and DOUBLE arrive as
  // their exact bits, independent of the server's text for them (which dbferry reads).
  const [rows] = await my.execute({ sql: `SELECT ${cols.map((c) => q(c.name)).join(', ')} FROM ${q(db)}.${q(table)}`, rowsAsArray: true } as never);
  return (rows as unknown[][])
    .map((row) =>
      row
        .map((v, i) => {
          const c = cols[i]!;
          if (v === null) return 'NULL';
          const s = Buffer.isBuffer(v) ? v : String(v);
          switch (c.dataType) {
            case 'tinyint':
              return /^tinyint\(1\)$/.test(c.columnType) ? (s === '1' ? 'true' : s === '0' ? 'false' : `bad ${s}`) : String(s);
            case 'float':
              return String(Math.fround(v as number));
            case 'double':
              return String(v as number);
            case 'bit':
              return bits(v as Buffer, Number(/\((\d+)\)/.exec(c.columnType)![1]));
            case 'binary':
            case 'varbinary':
            case 'blob':
            case 'tinyblob':
            case 'mediumblob':
            case 'longblob':
              return (v as Buffer).toString('hex');
            case 'char':
              return String(s).trimEnd();
            case 'json':
              return canonicalJson(String(s));
            case 'date':
              return ZERO.test(String(s)) ? 'NULL' : String(s);
            case 'datetime':
              return ZERO.test(String(s)) ? 'NULL' : dateTime(String(s));
            case 'timestamp':
              return ZERO.test(String(s)) ? 'NULL' : toUtc(String(s), offset);
            case 'time':
              return duration(String(s));
            case 'year':
              return String(Number(s));
            default:
              return String(s);
          }
        })
        .join('|'),
    )
    .sort();
}

/** Every row of the PostgreSQL copy, each value normalized by the same rules, sorted. */
export async function pgRowsAsApplicationReads(url: string, schema: string, table: string): Promise<string[]> {
  const c = new Client({
    connectionString: url,
    types: {
      getTypeParser: (oid: number, format?: string) =>
        [1082, 1083, 1114, 1184, 1186, 1560, 3802, 114].includes(oid) ? (x: string) => x : types.getTypeParser(oid, format as never),
    },
  });
  await c.connect();
  try {
    await c.query("SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'");
    const cols = (
      await c.query<{ name: string; type: string }>(
        `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = format('%I.%I', $1::text, $2::text)::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [schema, table],
      )
    ).rows;
    const r = await c.query({ text: `SELECT ${cols.map((x) => `"${x.name.replace(/"/g, '""')}"`).join(', ')} FROM "${schema.replace(/"/g, '""')}"."${table.replace(/"/g, '""')}"`, rowMode: 'array' });
    return (r.rows as unknown[][])
      .map((row) =>
        row
          .map((v, i) => {
            const t = cols[i]!.type;
            if (v === null) return 'NULL';
            if (t === 'boolean') return String(v);
            if (t === 'real') return String(Math.fround(Number(v)));
            if (t === 'double precision') return String(Number(v));
            if (t === 'bytea') return (v as Buffer).toString('hex');
            if (t.startsWith('character(')) return String(v).trimEnd();
            if (t === 'jsonb') return canonicalJson(String(v));
            if (t.startsWith('timestamp') && t.endsWith('with time zone')) return dateTime(String(v));
            if (t.startsWith('timestamp')) return dateTime(String(v));
            if (t.startsWith('interval')) return duration(String(v));
            return String(v);
          })
          .join('|'),
      )
      .sort();
  } finally {
    await c.end();
  }
}

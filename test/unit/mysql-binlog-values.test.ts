import type ZongJi from '@vlasky/zongji';
import type { TableMapEntry, TableMapEvent } from '@vlasky/zongji';
import { ApplicationFailure } from '@temporalio/common';
import { binlogRowEncoder, BINLOG_VALUE_OPTIONS, latin1Text, mysqlDoubleText, mysqlJsonText, readExactly } from '../../activities/mysql/binlog-values';
import type { ColumnModel, TableModel } from '../../plan/schema-model';

/**
 * The binlog side's own decoding, without a server: MySQL's binary JSON (built here from
 * json_binary.h's layout; checked once against zongji's decoder, which agrees on everything but
 * what this module fixes), double printing, latin1, and the encoder's refusals. The comparison
 * with the full load on a real server is test/integration/mysql-binlog-values.test.ts.
 */

// A MySQL binary JSON document builder, from the format's description (sql/json_binary.h).
type J =
  | { obj: Array<[string, J]> }
  | { arr: J[] }
  | { lit: 'null' | 'true' | 'false' }
  | { int: number; t: 'i16' | 'u16' | 'i32' | 'u32' }
  | { big: bigint; t: 'i64' | 'u64' }
  | { dbl: number }
  | { str: string }
  | { opaque: number; data: Buffer };
const CODE = { i16: 5, u16: 6, i32: 7, u32: 8, i64: 9, u64: 10 } as const;
const LIT = { null: 0, true: 1, false: 2 } as const;

function varLength(n: number): Buffer {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.from(out);
}

function typeOf(v: J, large: boolean): number {
  if ('obj' in v) return large ? 1 : 0;
  if ('arr' in v) return large ? 3 : 2;
  if ('lit' in v) return 4;
  if ('int' in v || 'big' in v) return CODE[v.t];
  if ('dbl' in v) return 11;
  return 'str' in v ? 12 : 15;
}

function body(v: J, large = false): Buffer {
  if ('int' in v) {
    const b = Buffer.alloc(v.t === 'i16' || v.t === 'u16' ? 2 : 4);
    if (v.t === 'i16') b.writeInt16LE(v.int);
    else if (v.t === 'u16') b.writeUInt16LE(v.int);
    else if (v.t === 'i32') b.writeInt32LE(v.int);
    else b.writeUInt32LE(v.int);
    return b;
  }
  if ('big' in v) {
    const b = Buffer.alloc(8);
    if (v.t === 'i64') b.writeBigInt64LE(v.big);
    else b.writeBigUInt64LE(v.big);
    return b;
  }
  if ('dbl' in v) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v.dbl);
    return b;
  }
  if ('str' in v) return Buffer.concat([varLength(Buffer.byteLength(v.str)), Buffer.from(v.str)]);
  if ('opaque' in v) return Buffer.concat([Buffer.from([v.opaque]), varLength(v.data.length), v.data]);
  if ('lit' in v) return Buffer.from([LIT[v.lit]]);
  const members = 'obj' in v ? v.obj : v.arr.map((x): [string, J] => ['', x]);
  const size = large ? 4 : 2;
  const word = (n: number) => {
    const b = Buffer.alloc(size);
    if (large) b.writeUInt32LE(n);
    else b.writeUInt16LE(n);
    return b;
  };
  const keys = 'obj' in v ? members.map(([k]) => Buffer.from(k)) : [];
  let offset = 2 * size + keys.length * (size + 2) + members.length * (1 + size);
  const keyEntries = keys.map((k) => {
    const e = Buffer.concat([word(offset), Buffer.from([k.length & 0xff, k.length >> 8])]);
    offset += k.length;
    return e;
  });
  const data: Buffer[] = [...keys];
  const valueEntries = members.map(([, x]) => {
    const inlined = 'lit' in x || ('int' in x && (x.t === 'i16' || x.t === 'u16' || large));
    if (inlined) return Buffer.concat([Buffer.from([typeOf(x, false)]), body(x), Buffer.alloc(size - body(x).length)]);
    const d = body(x);
    const e = Buffer.concat([Buffer.from([typeOf(x, false)]), word(offset)]);
    offset += d.length;
    data.push(d);
    return e;
  });
  return Buffer.concat([word(members.length), word(offset), ...keyEntries, ...valueEntries, ...data]);
}

const doc = (v: J, large = false) => Buffer.concat([Buffer.from([typeOf(v, large)]), body(v, large)]);

/** MySQL's binary DECIMAL (decimal2bin), from its description in strings/decimal.cc. */
function decimalBin(value: string, precision: number, scale: number): Buffer {
  const DIG2BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
  const negative = value.startsWith('-');
  const [whole = '', fraction = ''] = value.replace('-', '').split('.');
  const intg = precision - scale;
  const ints = whole.padStart(intg, '0');
  const fracs = fraction.padEnd(scale, '0');
  const out: Buffer[] = [];
  const put = (digits: string) => {
    if (!digits) return;
    const b = Buffer.alloc(DIG2BYTES[digits.length]!);
    b.writeUIntBE(Number(digits), 0, b.length);
    out.push(b);
  };
  put(ints.slice(0, intg % 9));
  for (let i = intg % 9; i < intg; i += 9) put(ints.slice(i, i + 9));
  for (let i = 0; i + 9 <= scale; i += 9) put(fracs.slice(i, i + 9));
  put(fracs.slice(scale - (scale % 9)));
  const b = Buffer.concat(out);
  if (negative) for (let i = 0; i < b.length; i++) b[i] ^= 0xff;
  b[0] ^= 0x80;
  return Buffer.concat([Buffer.from([precision, scale]), b]);
}

/** A packed DATETIME (TIME_to_longlong_datetime_packed), 8 bytes little-endian. */
function packedDatetime(y: number, mo: number, d: number, h: number, mi: number, s: number, us: number): Buffer {
  const ymd = (BigInt(y * 13 + mo) << 5n) | BigInt(d);
  const hms = (BigInt(h) << 12n) | (BigInt(mi) << 6n) | BigInt(s);
  const b = Buffer.alloc(8);
  b.writeBigInt64LE((((ymd << 17n) | hms) << 24n) + BigInt(us));
  return b;
}

function packedTime(negative: boolean, h: number, mi: number, s: number, us: number): Buffer {
  const p = (((BigInt(h) << 12n) | (BigInt(mi) << 6n) | BigInt(s)) << 24n) + BigInt(us);
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(negative ? -p : p);
  return b;
}

describe('MySQL binary JSON as MySQL prints it', () => {
  it('prints containers, literals and every number type exactly (int64 and uint64 beyond 2^53, doubles with .0)', () => {
    const v: J = {
      obj: [
        ['a', { int: -1, t: 'i16' }],
        ['bb', { arr: [{ lit: 'true' }, { lit: 'null' }, { lit: 'false' }, { dbl: 1 }, { dbl: 0.1 }, { dbl: 1e300 }, { dbl: -2.5e-7 }] }],
        ['c', { str: 'x"\\\n\t\u0001\u001f é🙂' }],
        ['d', { int: -70000, t: 'i32' }],
        ['e', { big: 18446744073709551615n, t: 'u64' }],
        ['f', { big: -9223372036854775808n, t: 'i64' }],
        ['g', { int: 4000000000, t: 'u32' }],
        ['h', { int: 65535, t: 'u16' }],
      ],
    };
    expect(mysqlJsonText(doc(v))).toBe(
      '{"a": -1, "bb": [true, null, false, 1.0, 0.1, 1e300, -0.00000025], "c": "x\\"\\\\\\n\\t\\u0001\u001f é🙂", "d": -70000, "e": 18446744073709551615, "f": -9223372036854775808, "g": 4000000000, "h": 65535}',
    );
  });

  it('reads large containers (4-byte offsets, 32-bit integers inlined)', () => {
    const v: J = { obj: [['a', { int: -70000, t: 'i32' }], ['b', { int: 4000000000, t: 'u32' }], ['c', { arr: [{ int: 5, t: 'i16' }, { str: 'y'.repeat(300) }] }]] };
    expect(mysqlJsonText(doc(v, true))).toBe(`{"a": -70000, "b": 4000000000, "c": [5, "${'y'.repeat(300)}"]}`);
  });

  it('prints scalars, empty containers and the empty value (MySQL reads it as null)', () => {
    expect(mysqlJsonText(doc({ str: 'scalar' }))).toBe('"scalar"');
    expect(mysqlJsonText(doc({ arr: [] }))).toBe('[]');
    expect(mysqlJsonText(doc({ obj: [] }))).toBe('{}');
    expect(mysqlJsonText(Buffer.from([4, 0]))).toBe('null');
    expect(mysqlJsonText(Buffer.from([5, 0x39, 0x30]))).toBe('12345');
    expect(mysqlJsonText(Buffer.alloc(0))).toBe('null');
  });

  it('prints a DECIMAL inside a document as a number with its scale (zongji makes it a string)', () => {
    for (const [value, precision, scale] of [['1.50', 10, 2], ['-1.50', 10, 2], ['0', 5, 0], ['0.00001', 5, 5], ['-0.500000000', 19, 9], ['-1234567890', 10, 0], ['-12345678901234567890123456789012345.123456789012345678901234567890', 65, 30]] as const) {
      expect(mysqlJsonText(doc({ arr: [{ opaque: 246, data: decimalBin(value, precision, scale) }] }))).toBe(`[${value}]`);
    }
  });

  it('prints dates, times and timestamps inside a document as MySQL does (6 decimals), other types as base64', () => {
    const d: J = {
      arr: [
        { opaque: 12, data: packedDatetime(2024, 2, 29, 23, 59, 59, 999999) },
        { opaque: 10, data: packedDatetime(2024, 2, 29, 0, 0, 0, 0) },
        { opaque: 7, data: packedDatetime(1970, 1, 1, 0, 0, 1, 1) },
        { opaque: 11, data: packedTime(true, 838, 59, 59, 0) },
        { opaque: 11, data: packedTime(true, 0, 0, 1, 500000) },
        { opaque: 11, data: packedTime(false, 12, 3, 4, 5) },
        { opaque: 15, data: Buffer.from('ab') },
      ],
    };
    expect(mysqlJsonText(doc(d))).toBe('["2024-02-29 23:59:59.999999", "2024-02-29", "1970-01-01 00:00:01.000001", "-838:59:59.000000", "-00:00:01.500000", "12:03:04.000005", "base64:type15:YWI="]');
  });
});

describe('mysqlDoubleText', () => {
  it('prints the shortest digits, positional within 15 places of the point, else with an exponent', () => {
    const cases: Array<[number, string]> = [
      [0, '0'],
      [-0, '0'],
      [1, '1'],
      [-1.5, '-1.5'],
      [0.1, '0.1'],
      [0.10000000149011612, '0.10000000149011612'],
      [100, '100'],
      [123456789012345, '123456789012345'],
      [1e15, '1e15'],
      [2.5e-7, '0.00000025'],
      [1234567890123456.8, '1234567890123456.8'],
      [12345678901234568, '1.2345678901234568e16'],
      [1e-14, '0.00000000000001'],
      [1e-15, '0.000000000000001'],
      [1e-16, '1e-16'],
      [1.2345678901234568e-15, '0.0000000000000012345678901234568'],
      [3.4028234663852886e38, '3.4028234663852886e38'],
      [-1.1754943508222875e-38, '-1.1754943508222875e-38'],
      [1.7976931348623157e308, '1.7976931348623157e308'],
      [5e-324, '5e-324'],
    ];
    for (const [x, s] of cases) expect([x, mysqlDoubleText(x)]).toEqual([x, s]);
  });
});

describe('latin1Text', () => {
  it('is MySQL latin1: cp1252 with the five undefined bytes kept as C1 controls', () => {
    expect(latin1Text(Buffer.from([0x61, 0x80, 0x81, 0x8d, 0x8f, 0x90, 0x9d, 0x9f, 0xa0, 0xff]))).toBe('a€\u0081\u008d\u008f\u0090\u009dŸ\u00a0ÿ');
  });
});

describe('binlogRowEncoder', () => {
  const col = (name: string, conversion: string, type: string, sourceType = type): ColumnModel => ({ name, type, notNull: false, binaryCopySafe: true, conversion, sourceType });
  const table: TableModel = {
    schema: 'shop',
    name: 't',
    columns: [
      col('id', 'integer', 'bigint', 'int'),
      col('ts', 'timestamp', 'timestamp(6) with time zone', 'timestamp(6)'),
      col('d', 'date', 'date'),
      col('y', 'year', 'smallint', 'year'),
      col('e', 'enum', 'text', "enum('a','b')"),
      col('f', 'float', 'real', 'float'),
      col('lat', 'text', 'text', 'varchar(5)'),
      col('g', 'geometry', 'bytea', 'point'),
      { ...col('gen', 'integer', 'integer'), generated: '(id * 2)' },
    ],
    uniques: [],
    checks: [],
    exclusions: [],
    foreignKeys: [],
    indexes: [],
    estimatedRows: '0',
    estimatedBytes: '0',
  };
  // A table map as zongji builds it (binlog_row_metadata=FULL), before readExactly.
  const tableMap = (): TableMapEntry => ({
    parentSchema: 'shop',
    tableName: 't',
    columnSchemas: ['id', 'ts', 'd', 'y', 'e', 'f', 'lat', 'g'].map((n) => ({ COLUMN_NAME: n, COLLATION_NAME: null, CHARACTER_SET_NAME: n === 'lat' ? 'latin1' : null, COLUMN_COMMENT: '', COLUMN_TYPE: n === 'e' ? "enum('a','b')" : 'x' })),
    columns: [
      { name: 'id', charset: null, type: 3, metadata: {} },
      { name: 'ts', charset: null, type: 17, metadata: { decimals: 6 } },
      { name: 'd', charset: null, type: 10, metadata: {} },
      { name: 'y', charset: null, type: 13, metadata: {} },
      { name: 'e', charset: 'utf8mb4', type: 247, metadata: { size: 1 } },
      { name: 'f', charset: null, type: 4, metadata: { size: 4 } },
      { name: 'lat', charset: 'latin1', type: 15, metadata: { max_length: 5 } },
      { name: 'g', charset: null, type: 255, metadata: { length_size: 4 } },
    ],
  });
  const prepare = (entry: TableMapEntry, config: Record<string, unknown> = { ...BINLOG_VALUE_OPTIONS }) => {
    readExactly({ tableMap: { 7: entry }, connection: { config } } as unknown as ZongJi, { tableId: 7 } as TableMapEvent);
    return entry;
  };
  const point = Buffer.from('00000000010100000000000000000000000000f03f', 'hex');
  const row = { id: 1, ts: '2024-02-29 18:29:59.999999', d: '0000-00-00', y: 1900, e: undefined, f: 0.10000000149011612, lat: Buffer.from([0x61, 0x81]), g: point };
  const text = (out: Array<Buffer | null>) => out.map((b) => (b === null ? null : b.toString('utf8')));

  it('has zongji hand over geometry and latin1 bytes, and fills ENUM members information_schema gave', () => {
    const entry = prepare(tableMap());
    expect(entry.columns!.map((c) => [c.name, c.type, c.charset])).toEqual([
      ['id', 3, null], ['ts', 17, null], ['d', 10, null], ['y', 13, null], ['e', 247, 'utf8mb4'], ['f', 4, null], ['lat', 15, 'latin1'], ['g', 252, null],
    ]);
    expect(entry.columnSchemas[6]!.COLUMN_TYPE).toMatch(/^varbinary/);
    expect(entry.columnSchemas[4]!.ENUM_VALUES).toEqual(['a', 'b']);
  });

  it('encodes the non-generated columns in model order as the load writes them, counting what it changed', () => {
    const changed: string[] = [];
    const encode = binlogRowEncoder(table, (c) => changed.push(c));
    expect(text(encode(row, prepare(tableMap())))).toEqual(['1', '2024-02-29 18:29:59.999999+00', null, '0', '', '0.10000000149011612', 'a\u0081', '\\x' + point.toString('hex')]);
    expect(changed).toEqual(['d']);
  });

  it('tells SQL NULL (null) from a value zongji could not decode (undefined) and from a column the row lacks', () => {
    const encode = binlogRowEncoder(table, () => undefined);
    const entry = prepare(tableMap());
    expect(text(encode({ ...row, id: null, ts: null }, entry)).slice(0, 2)).toEqual([null, null]);
    expect(() => encode({ ...row, id: undefined }, entry)).toThrow('shop.t.id: the binlog reader gave no value');
    const { ts: _, ...lacking } = row;
    let failure: unknown;
    try {
      encode(lacking, entry);
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'SchemaChanged', nonRetryable: true, message: expect.stringContaining("shop.t.ts is not in the binlog's row") });
  });

  it('refuses what it cannot read exactly: a table map not prepared, zongji without its options, a Date', () => {
    const encode = binlogRowEncoder(table, () => undefined);
    expect(() => encode(row, tableMap())).toThrow('readExactly did not prepare');
    expect(() => encode(row, prepare(tableMap(), { dateStrings: true }))).toThrow('zongji was created without BINLOG_VALUE_OPTIONS (timezone is undefined, not Z)');
    expect(() => encode({ ...row, ts: new Date(0) }, prepare(tableMap()))).toThrow('shop.t.ts: the binlog reader gave a Date');
  });

  it('reads a TIMESTAMP past 2038 (MariaDB 11.5+ stores it unsigned; zongji reads it signed)', () => {
    const encode = binlogRowEncoder(table, () => undefined);
    // 2^31 seconds, read as -2^31.
    expect(text(encode({ ...row, ts: '1901-12-13 20:45:52.500000' }, prepare(tableMap())))[1]).toBe('2038-01-19 03:14:08.500000+00');
  });
});

import { mysqlGeometryToEwkb, postgisSchemaOf, postgisType } from '../../activities/cross-engine/spatial';
import { convertColumn, enumMembers, UnsupportedType, type MysqlColumn } from '../../activities/mysql/types';

const col = (over: Partial<MysqlColumn>): MysqlColumn => ({
  name: 'c', dataType: 'int', columnType: 'int(11)', nullable: true, default: null, extra: '', charMaxLength: null,
  numericPrecision: null, numericScale: null, datetimePrecision: null, charset: null, generationExpression: null, isJson: false, ...over,
});

describe('MySQL column types → PostgreSQL', () => {
  test.each([
    [{ dataType: 'tinyint', columnType: 'tinyint(1)' }, 'boolean', []],
    [{ dataType: 'tinyint', columnType: 'tinyint(4)' }, 'smallint', ['"c" BETWEEN -128 AND 127']],
    [{ dataType: 'tinyint', columnType: 'tinyint(3) unsigned' }, 'smallint', ['"c" BETWEEN 0 AND 255']],
    [{ dataType: 'smallint', columnType: 'smallint(6)' }, 'smallint', []],
    [{ dataType: 'int', columnType: 'int(10) unsigned' }, 'bigint', ['"c" BETWEEN 0 AND 4294967295']],
    [{ dataType: 'bigint', columnType: 'bigint(20) unsigned' }, 'numeric(20,0)', ['"c" BETWEEN 0 AND 18446744073709551615']],
    [{ dataType: 'bigint', columnType: 'bigint(20)' }, 'bigint', []],
    [{ dataType: 'decimal', columnType: 'decimal(65,30) unsigned', numericPrecision: '65', numericScale: '30' }, 'numeric(65,30)', ['"c" >= 0']],
    [{ dataType: 'datetime', columnType: 'datetime(6)', datetimePrecision: '6' }, 'timestamp(6) without time zone', []],
    [{ dataType: 'timestamp', columnType: 'timestamp', datetimePrecision: '0' }, 'timestamp(0) with time zone', []],
    [{ dataType: 'time', columnType: 'time(3)', datetimePrecision: '3' }, 'interval(3)', []],
    [{ dataType: 'longtext', columnType: 'longtext', isJson: true }, 'jsonb', []],
    [{ dataType: 'point', columnType: 'point' }, 'bytea', []],
  ] as const)('%j → %s', (over, type, checks) => {
    const r = convertColumn(col(over));
    expect({ type: r.type, checks: r.checks }).toEqual({ type, checks });
  });

  test('enum and set members keep quotes, commas and backslashes; the check lists them', () => {
    expect(enumMembers("enum('a','b,c','it''s \"q\"','back\\\\slash')")).toEqual(['a', 'b,c', 'it\'s "q"', 'back\\slash']);
    const e = convertColumn(col({ dataType: 'enum', columnType: "enum('a','it''s')" }));
    expect(e).toMatchObject({ type: 'text', checks: [`"c" IN ('', 'a', 'it''s')`] });
    const s = convertColumn(col({ dataType: 'set', columnType: "set('x','y')" }));
    expect(s.checks).toEqual([`"c" = '' OR string_to_array("c", ',') <@ ARRAY['x', 'y']::text[]`]);
  });

  test('an AUTO_INCREMENT bigint unsigned is a bigint identity (identities are integers), said in a note', () => {
    const r = convertColumn(col({ dataType: 'bigint', columnType: 'bigint(20) unsigned', extra: 'auto_increment' }));
    expect(r).toMatchObject({ type: 'bigint', autoIncrement: true, checks: ['"c" BETWEEN 0 AND 9223372036854775807'] });
    expect(r.notes[0]).toMatch(/values above 9223372036854775807 cannot be loaded/);
  });

  test('defaults: constants and CURRENT_TIMESTAMP convert; a zero date or an expression is a note, not a default', () => {
    expect(convertColumn(col({ dataType: 'varchar', columnType: 'varchar(10)', charMaxLength: '10', default: "'it''s'" })).default).toBe(`'it''s'::character varying(10)`);
    expect(convertColumn(col({ dataType: 'int', columnType: 'int(11)', default: '7' })).default).toBe('7');
    expect(convertColumn(col({ dataType: 'tinyint', columnType: 'tinyint(1)', default: '1' })).default).toBe('true');
    expect(convertColumn(col({ dataType: 'timestamp', columnType: 'timestamp', default: 'current_timestamp()', extra: 'on update current_timestamp()' }))).toMatchObject({
      default: 'CURRENT_TIMESTAMP',
      onUpdateCurrentTimestamp: true,
    });
    const zero = convertColumn(col({ dataType: 'datetime', columnType: 'datetime', default: "'0000-00-00 00:00:00'" }));
    expect(zero.default).toBeUndefined();
    expect(zero.notes[0]).toMatch(/zero date/);
    const expr = convertColumn(col({ dataType: 'int', columnType: 'int(11)', default: '(1 + 2)' }));
    expect(expr.default).toBeUndefined();
    expect(expr.notes[0]).toMatch(/is not converted/);
  });

  test('a type it does not know is refused by name', () => {
    expect(() => convertColumn(col({ name: 'v', dataType: 'vector', columnType: 'vector(3)' }))).toThrow(UnsupportedType);
    expect(() => convertColumn(col({ name: 'v', dataType: 'vector', columnType: 'vector(3)' }))).toThrow('column v has type vector(3), which dbferry does not convert');
  });

  test("a spatial column is bytea in MySQL's form until the target decides; MySQL 8's SRID attribute stays in the source type", () => {
    expect(convertColumn(col({ dataType: 'point', columnType: 'point' }))).toMatchObject({ type: 'bytea', kind: 'geometry', sourceType: 'point' });
    expect(convertColumn(col({ dataType: 'point', columnType: 'point', srsId: '4326' }))).toMatchObject({ type: 'bytea', sourceType: 'point SRID 4326' });
    expect(convertColumn(col({ dataType: 'geometry', columnType: 'geometry', srsId: null })).sourceType).toBe('geometry');
    expect(convertColumn(col({ dataType: 'int', columnType: 'int(11)', srsId: '4326' })).sourceType).toBe('int(11)');
  });
});

describe('MySQL spatial columns → PostGIS', () => {
  test.each([
    ['point', '"public"."geometry"(Point)'],
    ['linestring', '"public"."geometry"(LineString)'],
    ['polygon', '"public"."geometry"(Polygon)'],
    ['multipoint', '"public"."geometry"(MultiPoint)'],
    ['multilinestring', '"public"."geometry"(MultiLineString)'],
    ['multipolygon', '"public"."geometry"(MultiPolygon)'],
    ['geometrycollection', '"public"."geometry"(GeometryCollection)'],
    ['geomcollection', '"public"."geometry"(GeometryCollection)'],
    ['geometry', '"public"."geometry"'],
    ['point SRID 4326', '"public"."geometry"(Point,4326)'],
    ['geometry SRID 0', '"public"."geometry"(Geometry,0)'],
    ['polygon SRID 999999', '"public"."geometry"(Polygon,999999)'],
  ])('%s → %s', (sourceType, type) => {
    expect(postgisType(sourceType, 'public')).toBe(type);
  });

  test("the extension's schema qualifies the type (quoted), and the checksum finds its functions there", () => {
    const type = postgisType('point', 'gis "x"')!;
    expect(type).toBe('"gis ""x"""."geometry"(Point)');
    expect(postgisSchemaOf(type)).toBe('"gis ""x"""');
  });

  test('a declared SRID PostGIS cannot hold keeps the column bytea', () => {
    expect(postgisType('point SRID 1000000', 'public')).toBeUndefined();
  });

  test("MySQL's form (SRID, then WKB) becomes EWKB: byte order, type with the SRID flag, SRID, the rest", () => {
    // SRID=4326;POINT(1 2), as MariaDB stores it and as PostGIS writes its EWKB.
    const mysql = Buffer.from('E61000000101000000000000000000F03F0000000000000040', 'hex');
    expect(mysqlGeometryToEwkb(mysql)!.toString('hex')).toBe('0101000020e6100000000000000000f03f0000000000000040');
    // Big-endian WKB (MySQL writes little-endian; the format allows both): the SRID follows the WKB's order.
    const big = Buffer.from('E6100000' + '00' + '00000001' + '3FF0000000000000' + '4000000000000000', 'hex');
    expect(mysqlGeometryToEwkb(big)!.toString('hex')).toBe('0020000001000010e63ff00000000000004000000000000000');
    // A collection: only the outermost geometry gets the SRID; the nested ones stay as they are.
    const nested = '0101000000000000000000f03f000000000000f03f';
    const collection = Buffer.from('110f0000' + '0107000000' + '01000000' + nested, 'hex');
    expect(mysqlGeometryToEwkb(collection)!.toString('hex')).toBe('0107000020' + '110f0000' + '01000000' + nested);
    // SRID 0 keeps the flag: PostGIS reads it as its own 0 (unknown).
    const zero = Buffer.from('00000000' + '0101000000' + '0000000000000840' + '0000000000001040', 'hex');
    expect(mysqlGeometryToEwkb(zero)!.toString('hex')).toBe('0101000020' + '00000000' + '0000000000000840' + '0000000000001040');
  });

  test('bytes that cannot be a geometry are refused (the reader names the value)', () => {
    expect(mysqlGeometryToEwkb(Buffer.alloc(0))).toBeUndefined();
    expect(mysqlGeometryToEwkb(Buffer.from('e6100000010100', 'hex'))).toBeUndefined();
    expect(mysqlGeometryToEwkb(Buffer.from('e6100000070100000000', 'hex'))).toBeUndefined();
  });
});

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
});

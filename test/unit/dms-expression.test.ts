import { parseExpression, referencedColumns, renderPostgres, type Expr } from '../../plan/dms-expression';
import { quoteIdent } from '../../plan/sql-names';

function parse(text: string): Expr {
  const r = parseExpression(text);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(text)} to parse: ${r.message}`);
  return r.ast;
}

function refused(text: string): string {
  const r = parseExpression(text);
  if (r.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`);
  return r.message;
}

/** Columns render as their quoted name, as the transformation does with target names. */
const pg = (text: string, column: (name: string) => string = quoteIdent) => renderPostgres(parse(text), column);

describe('parseExpression', () => {
  test('column references, literals and NULL', () => {
    expect(parse('$FIRST_NAME')).toEqual({ kind: 'column', name: 'FIRST_NAME' });
    expect(parse("'it''s'")).toEqual({ kind: 'string', value: "it's" });
    expect(parse('42')).toEqual({ kind: 'number', text: '42', integer: true });
    expect(parse('4.25')).toEqual({ kind: 'number', text: '4.25', integer: false });
    expect(parse('null')).toEqual({ kind: 'null' });
  });

  test("SQLite's precedence: || binds tighter than *, * tighter than +, comparison tighter than AND", () => {
    expect(parse('$a || $b * 2')).toEqual({
      kind: 'binary',
      op: '*',
      left: { kind: 'binary', op: '||', left: { kind: 'column', name: 'a' }, right: { kind: 'column', name: 'b' } },
      right: { kind: 'number', text: '2', integer: true },
    });
    const e = parse('$a + $b * 2 > 3 AND NOT $c = 1 OR $d IS NOT NULL');
    expect(e.kind === 'binary' && e.op).toBe('or');
    expect(pg('$a + $b * 2 > 3 AND NOT $c = 1 OR $d IS NOT NULL')).toBe(
      'CAST((((("a" + ("b" * 2)) > 3) AND (NOT ("c" = 1))) OR ("d" IS NOT NULL)) AS integer)',
    );
  });

  test('== and != are = and <>', () => {
    expect(pg('$a == 1')).toBe('CAST(("a" = 1) AS integer)');
    expect(pg('$a != 1')).toBe('CAST(("a" <> 1) AS integer)');
    expect(pg('$a <> 1')).toBe('CAST(("a" <> 1) AS integer)');
  });

  test('CASE in both forms, with and without ELSE', () => {
    expect(pg("CASE WHEN $qty > 10 THEN 'bulk' ELSE 'retail' END")).toBe(`(CASE WHEN ("qty" > 10) THEN 'bulk' ELSE 'retail' END)`);
    expect(pg("case $status when 'A' then 1 when 'B' then 2 end")).toBe(`(CASE "status" WHEN 'A' THEN 1 WHEN 'B' THEN 2 END)`);
  });

  test('referencedColumns lists each column once, in order of use', () => {
    expect(referencedColumns(parse("$LAST || ', ' || $FIRST || coalesce($MIDDLE, $LAST)"))).toEqual(['LAST', 'FIRST', 'MIDDLE']);
    expect(referencedColumns(parse("datetime('now')"))).toEqual([]);
  });

  test('Unicode column names after $', () => {
    expect(referencedColumns(parse('$prénom || $名前'))).toEqual(['prénom', '名前']);
  });

  test.each([
    ['$a LIKE 1', 'unsupported: LIKE'],
    ['$a IN (1, 2)', 'unsupported: IN'],
    ['$a BETWEEN 1 AND 2', 'unsupported: BETWEEN'],
    ['CAST($a AS text)', 'unsupported function CAST()'],
    ['instr($a, 1)', 'unsupported function instr()'],
    ['$a & 1', 'unsupported operator &'],
    ['$a << 1', 'unsupported operator <<'],
    ['$a -> 1', 'unsupported operator ->'],
    ['first_name', 'unsupported: the bare name first_name'],
    ['"first_name"', 'unsupported: quoted names'],
    ['$a IS 1', 'IS is supported only as IS NULL or IS NOT NULL'],
    ["datetime('now', 'localtime')", 'datetime() takes 1 argument, got 2'],
    ["datetime('2024-01-01')", "datetime() is supported only as datetime('now')"],
    ['upper()', 'upper() takes 1 argument, got 0'],
    ['substr($a)', 'substr() takes 2 or 3 arguments, got 1'],
    ['coalesce($a)', 'coalesce() takes at least 2 arguments, got 1'],
    ['substr($a, 1.5)', 'substr() positions and lengths must be integers'],
    ['substr($a, 1, -2)', 'unsupported: a negative substr() length'],
    ['1e5', 'unsupported: numbers with an exponent'],
    ['$a -- comment', 'comments are not supported'],
    ["'open", 'unterminated string'],
    ['$', 'a $ must be followed by a column name'],
    ['($a', 'unexpected the end of the expression (at character 4): expected )'],
    ['$a $b', 'unexpected $b (at character 4)'],
    ['CASE END', 'expected WHEN'],
    ['', 'the expression is empty'],
    ['TRUE', 'unsupported: TRUE'],
  ])('%s is refused: %s', (text, message) => {
    expect(refused(text)).toContain(message);
  });

  test('nesting is bounded', () => {
    expect(refused('('.repeat(500) + '1' + ')'.repeat(500))).toContain('nested too deeply');
    expect(refused('- '.repeat(500) + '1')).toContain('nested too deeply');
  });
});

describe('renderPostgres: SQLite semantics on PostgreSQL', () => {
  test('|| turns both sides to text (NULL stays NULL: text concatenation is strict)', () => {
    expect(pg("$FIRST_NAME || '_' || $LAST_NAME")).toBe(`((CAST("FIRST_NAME" AS text) || '_') || CAST("LAST_NAME" AS text))`);
    expect(pg('$qty || 1')).toBe('(CAST("qty" AS text) || CAST(1 AS text))');
  });

  test('/ and % keep integer truncation and give NULL for a zero divisor, as SQLite does', () => {
    expect(pg('$a / $b')).toBe('("a" / NULLIF("b", 0))');
    expect(pg('7 / 2')).toBe('(7 / NULLIF(2, 0))');
    expect(pg('$a % 3')).toBe('("a" % NULLIF(3, 0))');
    expect(pg('$a / 2.0')).toBe('("a" / NULLIF(2.0, 0))');
  });

  test('unary minus and a decimal without a leading digit', () => {
    expect(pg('-$a + .5')).toBe('((- "a") + 0.5)');
    expect(pg('- -1')).toBe('(- (- 1))');
  });

  test('conditions are 0/1 as values, and values are cast when used as conditions', () => {
    expect(pg('($a > 1) + 1')).toBe('(CAST(("a" > 1) AS integer) + 1)');
    expect(pg('CASE WHEN $flag THEN 1 ELSE 0 END')).toBe('(CASE WHEN CAST("flag" AS boolean) THEN 1 ELSE 0 END)');
    expect(pg('NOT $flag')).toBe('CAST((NOT CAST("flag" AS boolean)) AS integer)');
    expect(pg('$a IS NULL')).toBe('CAST(("a" IS NULL) AS integer)');
  });

  test('substr: 1-based, negative starts count from the end', () => {
    expect(pg('substr($code, 2)')).toBe('substr(CAST("code" AS text), 2)');
    expect(pg('substr($code, 2, 3)')).toBe('substr(CAST("code" AS text), 2, 3)');
    expect(pg('substr($code, -3)')).toBe('substr(CAST("code" AS text), (char_length(CAST("code" AS text)) - 2))');
    expect(pg('substr($code, -3, 2)')).toBe('substr(CAST("code" AS text), (char_length(CAST("code" AS text)) - 2), 2)');
    expect(pg('substr($code, -1)')).toBe('substr(CAST("code" AS text), (char_length(CAST("code" AS text)) - 0))');
    expect(pg('substr($code, $start, $len)')).toBe(
      '(CASE WHEN CAST("start" AS integer) < 0 ' +
        'THEN substr(CAST("code" AS text), (char_length(CAST("code" AS text)) + CAST("start" AS integer) + 1), CAST("len" AS integer)) ' +
        'ELSE substr(CAST("code" AS text), CAST("start" AS integer), CAST("len" AS integer)) END)',
    );
  });

  test('the other functions', () => {
    expect(pg('upper($a)')).toBe('upper(CAST("a" AS text))');
    expect(pg('LOWER($a)')).toBe('lower(CAST("a" AS text))');
    expect(pg('length($a)')).toBe('char_length(CAST("a" AS text))');
    expect(pg('trim($a)')).toBe('btrim(CAST("a" AS text))');
    expect(pg("trim($a, 'x')")).toBe(`btrim(CAST("a" AS text), 'x')`);
    expect(pg("replace($a, 'x', 'y')")).toBe(`replace(CAST("a" AS text), 'x', 'y')`);
    expect(pg("upper(lower($a) || 'x')")).toBe(`upper((lower(CAST("a" AS text)) || 'x'))`);
    expect(pg("ifnull($a, 'none')")).toBe(`COALESCE("a", 'none')`);
    expect(pg('coalesce($a, $b, 0)')).toBe('COALESCE("a", "b", 0)');
    expect(pg("datetime('now')")).toBe(`to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')`);
    expect(pg("DATETIME('NOW')")).toBe(`to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')`);
  });

  test('string literals are quoted by quoteLiteral (a backslash takes the E form)', () => {
    expect(pg(`'a\\b' || 'c''d'`)).toBe(`(E'a\\\\b' || 'c''d')`);
  });

  test('identifiers come only from the column callback: hostile names stay quoted', () => {
    const target: Record<string, string> = { first: 'First "Name"', last: 'last name; DROP TABLE x', uni: 'Ünïcødé 名前' };
    const sql = pg("$first || ' ' || $last || $uni", (name) => quoteIdent(target[name]!));
    expect(sql).toBe(`(((CAST("First ""Name""" AS text) || ' ') || CAST("last name; DROP TABLE x" AS text)) || CAST("Ünïcødé 名前" AS text))`);
    const seen: string[] = [];
    pg('$a + $b + $a', (name) => {
      seen.push(name);
      return quoteIdent(name);
    });
    expect(seen).toEqual(['a', 'b', 'a']);
  });
});

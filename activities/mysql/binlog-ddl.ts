/**
 * What a statement in the binlog (a Query event: DDL and other statements logged as text even in
 * ROW format) means for CDC. Pure. Only the statement's head is read — its kind and the tables it
 * names — which MySQL's grammar makes unambiguous; the columns an ADD COLUMN brings are read from
 * the binlog's next table map instead (names and order as the server wrote them).
 *
 * - ALTER TABLE … ADD [COLUMN] on a migrated table: nothing to do here (the applier adds the column
 *   when the table map shows it, and refuses a NOT NULL column without a constant default);
 * - TRUNCATE of a migrated table: a truncate;
 * - any other DDL naming a migrated table (DROP, RENAME, MODIFY, CHANGE, indexes, keys…): refused,
 *   the migration pauses for the operator with the statement;
 * - everything else (other tables, users, grants, ANALYZE…): ignored.
 */

export type DdlVerdict = { kind: 'ignore' } | { kind: 'truncate'; tables: string[] } | { kind: 'refuse'; table: string; why: string };

type Migrated = (schema: string, name: string) => boolean;

interface Token {
  text: string;
  /** A `quoted` identifier (never a keyword). */
  quoted: boolean;
}

/** Identifiers, words and punctuation; comments and string literals are dropped (they never name a table). */
function tokens(sql: string): Token[] {
  const out: Token[] = [];
  const re = /\s+|\/\*[\s\S]*?\*\/|--[^\n]*|#[^\n]*|`((?:[^`]|``)*)`|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|([\p{L}\p{N}_$]+)|(.)/gu;
  for (let m = re.exec(sql); m; m = re.exec(sql)) {
    if (m[1] !== undefined) out.push({ text: m[1].replace(/``/g, '`'), quoted: true });
    else if (m[2] !== undefined) out.push({ text: m[2], quoted: false });
    else if (m[3] !== undefined) out.push({ text: m[3], quoted: false });
  }
  return out;
}

class Reader {
  i = 0;
  constructor(readonly t: Token[]) {}
  peek(n = 0): Token | undefined {
    return this.t[this.i + n];
  }
  /** The next token is this keyword (case-insensitive, unquoted): consumes it. */
  word(...words: string[]): boolean {
    const x = this.peek();
    if (x && !x.quoted && words.some((w) => w.toUpperCase() === x.text.toUpperCase())) {
      this.i++;
      return true;
    }
    return false;
  }
  /** `db`.`t` or `t`: the table's schema (the statement's default database when absent) and name. */
  table(schema: string): { schema: string; name: string } | undefined {
    const a = this.peek();
    if (!a || (!a.quoted && !/^[\p{L}\p{N}_$]+$/u.test(a.text))) return undefined;
    this.i++;
    if (this.peek()?.text === '.' && !this.peek()!.quoted) {
      this.i++;
      const b = this.peek();
      if (!b) return undefined;
      this.i++;
      return { schema: a.text, name: b.text };
    }
    return { schema, name: a.text };
  }
}

export function ddlVerdict(sql: string, defaultSchema: string, migrated: Migrated): DdlVerdict {
  const r = new Reader(tokens(sql));
  const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
  const refuseAny = (tables: Array<{ schema: string; name: string } | undefined>, why: string): DdlVerdict => {
    const hit = tables.find((t) => t && migrated(t.schema, t.name));
    return hit ? { kind: 'refuse', table: key(hit), why } : { kind: 'ignore' };
  };

  if (r.word('ALTER')) {
    r.word('ONLINE', 'OFFLINE');
    r.word('IGNORE');
    if (!r.word('TABLE')) return { kind: 'ignore' };
    r.word('IF') && r.word('EXISTS');
    const table = r.table(defaultSchema);
    if (!table || !migrated(table.schema, table.name)) return { kind: 'ignore' };
    return onlyAddsColumns(r) ? { kind: 'ignore' } : { kind: 'refuse', table: key(table), why: 'an ALTER TABLE other than ADD COLUMN' };
  }
  if (r.word('TRUNCATE')) {
    r.word('TABLE');
    const table = r.table(defaultSchema);
    return table && migrated(table.schema, table.name) ? { kind: 'truncate', tables: [key(table)] } : { kind: 'ignore' };
  }
  if (r.word('DROP')) {
    r.word('TEMPORARY');
    if (r.word('TABLE', 'TABLES')) {
      r.word('IF') && r.word('EXISTS');
      return refuseAny(listOfTables(r, defaultSchema), 'the table was dropped');
    }
    if (r.word('INDEX')) return refuseAny(afterOn(r, defaultSchema), 'an index was dropped');
    return { kind: 'ignore' };
  }
  if (r.word('RENAME')) {
    if (!r.word('TABLE', 'TABLES')) return { kind: 'ignore' };
    return refuseAny(listOfTables(r, defaultSchema), 'the table was renamed');
  }
  if (r.word('CREATE')) {
    r.word('OR') && r.word('REPLACE');
    r.word('TEMPORARY');
    if (r.word('TABLE')) {
      r.word('IF') && r.word('NOT') && r.word('EXISTS');
      return refuseAny([r.table(defaultSchema)], 'the table was created again');
    }
    r.word('UNIQUE', 'FULLTEXT', 'SPATIAL');
    if (r.word('INDEX')) return refuseAny(afterOn(r, defaultSchema), 'an index was created');
  }
  return { kind: 'ignore' };
}

/** `a, b TO c, …`: every table name in the list. */
function listOfTables(r: Reader, schema: string): Array<{ schema: string; name: string } | undefined> {
  const out: Array<{ schema: string; name: string } | undefined> = [];
  while (r.peek()) {
    out.push(r.table(schema));
    while (r.peek() && r.peek()!.text !== ',' && !r.word('TO')) r.i++;
    if (r.peek()?.text === ',') r.i++;
  }
  return out;
}

/** The table after ON (CREATE/DROP INDEX name ON table). */
function afterOn(r: Reader, schema: string): Array<{ schema: string; name: string } | undefined> {
  while (r.peek() && !r.word('ON')) r.i++;
  return [r.table(schema)];
}

/** Every top-level clause of the ALTER is ADD [COLUMN] <column> (or ALGORITHM=/LOCK= options). */
function onlyAddsColumns(r: Reader): boolean {
  const clauses: Token[][] = [[]];
  let depth = 0;
  for (let x = r.peek(); x; r.i++, x = r.peek()) {
    if (!x.quoted && x.text === '(') depth++;
    if (!x.quoted && x.text === ')') depth--;
    if (depth === 0 && !x.quoted && x.text === ',') clauses.push([]);
    else clauses[clauses.length - 1]!.push(x);
  }
  if (clauses.length === 1 && clauses[0]!.length === 0) return false;
  return clauses.every((c) => {
    const w = (i: number) => (c[i] && !c[i]!.quoted ? c[i]!.text.toUpperCase() : '');
    if (w(0) === 'ALGORITHM' || w(0) === 'LOCK') return true;
    if (w(0) !== 'ADD') return false;
    if (w(1) === 'COLUMN') return true;
    // ADD INDEX / KEY / CONSTRAINT / PRIMARY KEY / UNIQUE / FOREIGN KEY / FULLTEXT / SPATIAL / PARTITION / PERIOD / SYSTEM VERSIONING…
    return !['INDEX', 'KEY', 'CONSTRAINT', 'PRIMARY', 'UNIQUE', 'FOREIGN', 'FULLTEXT', 'SPATIAL', 'PARTITION', 'PERIOD', 'SYSTEM', 'CHECK', 'IF'].includes(w(1)) || c[1]!.quoted;
  });
}

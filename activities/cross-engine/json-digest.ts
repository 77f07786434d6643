/**
 * JSON documents compared exactly across engines. MySQL keeps a JSON document as written
 * (MariaDB: the text itself) and PostgreSQL's jsonb normalizes it (key order, spacing,
 * duplicate keys, number notation, string escapes), and neither engine's SQL can rewrite the
 * other's form (MariaDB's JSON_NORMALIZE keeps string escapes as written and turns numbers into
 * doubles). So both sides' documents are read as text and brought into one canonical form here,
 * by the same code: a document equal as jsonb compares equal, and any changed member, item,
 * string or number does not.
 *
 * The canonical form: objects with their members sorted by key, a duplicate key keeping its
 * first value (as MySQL reads it; the load writes that, withoutDuplicateKeys), no spacing, strings as JSON.stringify writes them, and
 * numbers as `[-]<digits>e<exponent>` with no leading or trailing zeros (1, 1.0 and 1e0 are one
 * number, as jsonb's numeric equality says).
 *
 * Written by hand: JSON.parse reads numbers into doubles (12345678901234567890123 would change)
 * and Node 20 has no access to a number's source text.
 */
import { createHash } from 'node:crypto';
import { sourceColumns, type ColumnModel, type TableModel } from '../../plan/schema-model';

export function canonicalJson(text: string): string {
  return parse(text, true).out;
}

/**
 * The document without the later members of a duplicate key, or undefined when it has none.
 * MySQL and MariaDB read the first (`JSON_EXTRACT('{"a":1,"a":2}', '$.a')` is 1; MySQL 8 keeps
 * only the first when it stores a document) while jsonb would keep the last: the load writes
 * what the source's applications read. Members keep their order, numbers their text.
 */
export function withoutDuplicateKeys(text: string): string | undefined {
  const r = parse(text, false);
  return r.duplicates ? r.out : undefined;
}

function parse(text: string, canonical: boolean): { out: string; duplicates: boolean } {
  const p = new Parser(text, canonical);
  p.space();
  const out = p.value();
  p.space();
  if (p.i !== text.length) p.fail('text after the document');
  return { out, duplicates: p.duplicates };
}

const NUMBER = /(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?/y;

class Parser {
  i = 0;
  duplicates = false;
  constructor(
    private readonly s: string,
    /** Canonical: members sorted, numbers and strings rewritten; else only later duplicates dropped. */
    private readonly canonical: boolean,
  ) {}

  fail(what: string): never {
    throw new Error(`not a JSON document (${what} at character ${this.i})`);
  }

  space(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i]!)) this.i++;
  }

  value(): string {
    const ch = this.s[this.i];
    if (ch === '{') return this.object();
    if (ch === '[') return this.array();
    if (ch === '"') {
      const start = this.i;
      const s = this.string();
      return this.canonical ? JSON.stringify(s) : this.s.slice(start, this.i);
    }
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) {
      const start = this.i;
      const n = this.number();
      return this.canonical ? n : this.s.slice(start, this.i);
    }
    for (const word of ['true', 'false', 'null']) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return word;
      }
    }
    return this.fail('an unexpected character');
  }

  object(): string {
    this.i++;
    const members = new Map<string, string>();
    this.space();
    if (this.s[this.i] === '}') {
      this.i++;
      return '{}';
    }
    for (;;) {
      this.space();
      if (this.s[this.i] !== '"') this.fail('a key expected');
      const keyStart = this.i;
      const key = this.string();
      const keyText = this.s.slice(keyStart, this.i);
      this.space();
      if (this.s[this.i++] !== ':') this.fail('":" expected');
      this.space();
      const value = this.value();
      // The first of a duplicate key is the one MySQL reads.
      if (members.has(key)) this.duplicates = true;
      else members.set(key, this.canonical ? value : `${keyText}:${value}`);
      this.space();
      const sep = this.s[this.i++];
      if (sep === '}') break;
      if (sep !== ',') this.fail('"," or "}" expected');
    }
    if (!this.canonical) return `{${[...members.values()].join(',')}}`;
    const keys = [...members.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${members.get(k)}`).join(',')}}`;
  }

  array(): string {
    this.i++;
    const items: string[] = [];
    this.space();
    if (this.s[this.i] === ']') {
      this.i++;
      return '[]';
    }
    for (;;) {
      this.space();
      items.push(this.value());
      this.space();
      const sep = this.s[this.i++];
      if (sep === ']') break;
      if (sep !== ',') this.fail('"," or "]" expected');
    }
    return `[${items.join(',')}]`;
  }

  /** A string literal, decoded (escapes resolved), so that `\u00e9` and `é` are one string. */
  string(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const ch = this.s[this.i];
      if (ch === undefined) this.fail('an unterminated string');
      if (ch === '\\') this.i += 2;
      else if (ch === '"') break;
      else this.i++;
    }
    this.i++;
    return JSON.parse(this.s.slice(start, this.i)) as string;
  }

  number(): string {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (!m) return this.fail('a malformed number');
    this.i += m[0].length;
    const [, sign, int, frac = '', exp = '0'] = m;
    const digits = (int! + frac).replace(/^0+/, '');
    if (digits === '') return '0';
    const trimmed = digits.replace(/0+$/, '');
    // The value is 0.<digits> × 10^(exponent + integer digits), leading zeros aside.
    const leading = (int! + frac).length - (int! + frac).replace(/^0+/, '').length;
    const e = BigInt(exp) + BigInt(int!.length) - BigInt(leading) - 1n;
    return `${sign}${trimmed}e${e}`;
  }
}

/** The columns a row's documents are bound to in the digest: its primary key, else every other column. */
export function jsonRowKey(t: TableModel): { key: ColumnModel[]; json: ColumnModel[] } {
  const cols = sourceColumns(t);
  const json = cols.filter((c) => c.conversion === 'json');
  const pk = t.primaryKey?.columns ?? [];
  const key = pk.length > 0 ? pk.map((k) => cols.find((c) => c.name === k)!).filter(Boolean) : cols.filter((c) => c.conversion !== 'json');
  return { key, json };
}

/**
 * The order-independent digest of a table's JSON documents: per row, MD5 of the row's key (the
 * canonical texts of canonical.ts, so two rows' documents swapped do not sum alike) and each
 * document's canonical form (`-` for NULL) with its length, of which the first 15 hex digits are
 * summed (as the SQL checksum sums its rows, so chunks of a table add up).
 */
export class JsonDigest {
  private sum = 0n;

  addRow(key: Array<string | null>, documents: Array<string | Buffer | null>): void {
    const parts = [...key.map((k) => (k === null ? '-' : `${k.length}:${k}`)), ...documents.map((v) => {
      if (v === null) return '-';
      const c = canonicalJson(Buffer.isBuffer(v) ? v.toString('utf8') : v);
      return `${c.length}:${c}`;
    })];
    this.sum += BigInt('0x' + createHash('md5').update(parts.join(',')).digest('hex').slice(0, 15));
  }

  /** Added to the SQL checksum of the same rows: one number per table or chunk in the ledger. */
  addTo(checksum: string): string {
    return (BigInt(checksum) + this.sum).toString();
  }
}

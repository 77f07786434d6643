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
 * last value (as jsonb and MySQL do), no spacing, strings as JSON.stringify writes them, and
 * numbers as `[-]<digits>e<exponent>` with no leading or trailing zeros (1, 1.0 and 1e0 are one
 * number, as jsonb's numeric equality says).
 *
 * Written by hand: JSON.parse reads numbers into doubles (12345678901234567890123 would change)
 * and Node 20 has no access to a number's source text.
 */
import { createHash } from 'node:crypto';

export function canonicalJson(text: string): string {
  const p = new Parser(text);
  p.space();
  const out = p.value();
  p.space();
  if (p.i !== text.length) p.fail('text after the document');
  return out;
}

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

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
    if (ch === '"') return JSON.stringify(this.string());
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.number();
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
      const key = this.string();
      this.space();
      if (this.s[this.i++] !== ':') this.fail('":" expected');
      this.space();
      members.delete(key);
      members.set(key, this.value());
      this.space();
      const sep = this.s[this.i++];
      if (sep === '}') break;
      if (sep !== ',') this.fail('"," or "}" expected');
    }
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
    const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?/.exec(this.s.slice(this.i, this.i + 4096));
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

/**
 * The order-independent digest of a table's JSON columns: per row, MD5 of each column's
 * canonical form (`-` for NULL) with its length, of which the first 15 hex digits are summed
 * (as the SQL checksum sums its rows, so chunks of a table add up).
 */
export class JsonDigest {
  private sum = 0n;

  addRow(values: Array<string | Buffer | null>): void {
    const parts = values.map((v) => {
      if (v === null) return '-';
      const c = canonicalJson(Buffer.isBuffer(v) ? v.toString('utf8') : v);
      return `${c.length}:${c}`;
    });
    this.sum += BigInt('0x' + createHash('md5').update(parts.join(',')).digest('hex').slice(0, 15));
  }

  /** Added to the SQL checksum of the same rows: one number per table or chunk in the ledger. */
  addTo(checksum: string): string {
    return (BigInt(checksum) + this.sum).toString();
  }
}

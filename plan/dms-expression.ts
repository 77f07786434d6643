/**
 * The expressions of DMS transformation rules (`add-column` with `expression`): the subset of
 * SQLite's expression language that DMS documents, with `$NAME` for a source column, parsed into
 * a small tree and rendered as PostgreSQL that keeps SQLite's meaning where the two differ.
 *
 * Hand-written on purpose. General SQL parsers for JavaScript parse whole statements of one
 * dialect into that dialect's tree; none knows DMS's `$COLUMN` references, and rendering their
 * tree for PostgreSQL would still not give SQLite's semantics (`||` on numbers, integer
 * division, `substr` counting from the end). The renderer has to decide node by node anyway,
 * and the grammar below is small enough that owning it is cheaper than adapting one.
 *
 * Where the rendering follows SQLite and where it cannot:
 * - `||` turns both sides to text (`CAST(x AS text)`); NULL on either side gives NULL, as in
 *   SQLite. Numbers and timestamps are written as PostgreSQL writes them (`1.50` stays `1.50`;
 *   SQLite would print a REAL as `1.5`).
 * - `/` keeps PostgreSQL's own division: with two integer operands it truncates toward zero,
 *   exactly as SQLite's integer division does, and with a decimal operand it is exact decimal
 *   division (SQLite divides REALs). Division by zero gives NULL in SQLite and an error in
 *   PostgreSQL, so the divisor is wrapped in `NULLIF(…, 0)`. `%` is treated the same way; on
 *   non-integers SQLite truncates both sides first and PostgreSQL does not.
 * - Comparisons and AND/OR/NOT give booleans in PostgreSQL and 0/1 in SQLite: a condition used
 *   as a value is cast to integer (so `($a > 1) + 1` and a 0/1 result work as in SQLite), and a
 *   value used as a condition is cast to boolean (integers: 0 is false, others true).
 * - `substr(x, start[, length])` counts from 1; a negative start counts from the end (SQLite),
 *   rendered with `char_length`. A negative constant length is refused (SQLite returns the
 *   characters before start; PostgreSQL refuses a negative length).
 * - `length(x)` is `char_length(CAST(x AS text))`: characters of the text form (bytea values
 *   are measured in their hex text, not in bytes).
 * - `upper`/`lower` follow the target's collation for non-ASCII letters (SQLite folds ASCII
 *   only); `<`, `>` on text follow the target column's collation, not SQLite's byte order.
 * - `ifnull` is `COALESCE`; PostgreSQL needs the arguments to share a type, SQLite does not.
 * - `datetime('now')` is the UTC time as SQLite formats it; `now()` is the transaction's start,
 *   SQLite's is the statement's.
 * - No implicit conversion between text and numbers (SQLite's type affinity): arithmetic on a
 *   text column, or comparing it with a number, fails on the target (an error at load time,
 *   never a silently different value). A value used as a condition must be an integer, a
 *   boolean or text PostgreSQL reads as a boolean.
 * - SQLite's integers overflow into REALs; PostgreSQL's raise an error.
 */
import { quoteLiteral } from './sql-names';

export type BinaryOperator = '||' | '+' | '-' | '*' | '/' | '%' | '=' | '<>' | '<' | '<=' | '>' | '>=' | 'and' | 'or';

export type FunctionName = 'upper' | 'lower' | 'substr' | 'trim' | 'replace' | 'length' | 'coalesce' | 'ifnull' | 'datetime';

export type Expr =
  | { kind: 'column'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'number'; text: string; integer: boolean }
  | { kind: 'null' }
  | { kind: 'negate'; operand: Expr }
  | { kind: 'not'; operand: Expr }
  | { kind: 'binary'; op: BinaryOperator; left: Expr; right: Expr }
  | { kind: 'is-null'; operand: Expr; negated: boolean }
  | { kind: 'case'; operand?: Expr; branches: { when: Expr; then: Expr }[]; otherwise?: Expr }
  | { kind: 'call'; name: FunctionName; args: Expr[] };

export type ParseResult = { ok: true; ast: Expr } | { ok: false; message: string };

type Token =
  | { t: 'column'; name: string; at: number }
  | { t: 'string'; value: string; at: number }
  | { t: 'number'; text: string; integer: boolean; at: number }
  | { t: 'word'; word: string; at: number }
  | { t: 'op'; op: string; at: number }
  | { t: 'end'; at: number };

class ExpressionError extends Error {}

const MAX_LENGTH = 10_000;
const MAX_DEPTH = 100;

/** `$` then letters, digits and `_` of any script: DMS column names are case-sensitive. */
const COLUMN_CHAR = /[\p{L}\p{M}\p{N}_]/u;
const OPERATORS = ['||', '==', '!=', '<>', '<=', '>=', '<', '>', '=', '+', '-', '*', '/', '%', '(', ')', ','];
/** SQLite operators outside DMS's documented subset, named in the refusal. */
const UNSUPPORTED_OPERATORS = ['<<', '>>', '->>', '->', '&', '|', '~'];
const UNSUPPORTED_WORDS = new Set([
  'like', 'glob', 'regexp', 'match', 'in', 'between', 'escape', 'collate', 'cast', 'exists', 'select', 'isnull', 'notnull',
  'true', 'false', 'current_timestamp', 'current_date', 'current_time', 'distinct', 'raise',
]);
const KEYWORDS = new Set(['and', 'or', 'not', 'is', 'null', 'case', 'when', 'then', 'else', 'end']);

const ARITY: Record<FunctionName, [number, number]> = {
  upper: [1, 1],
  lower: [1, 1],
  length: [1, 1],
  substr: [2, 3],
  trim: [1, 2],
  replace: [3, 3],
  coalesce: [2, Infinity],
  ifnull: [2, 2],
  datetime: [1, 1],
};

const where = (at: number) => `at character ${at + 1}`;

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    if (text.startsWith('--', i) || text.startsWith('/*', i)) throw new ExpressionError(`comments are not supported (${where(at)})`);
    if (c === '$') {
      let j = i + 1;
      while (j < text.length && COLUMN_CHAR.test(text[j]!)) j++;
      if (j === i + 1) throw new ExpressionError(`a $ must be followed by a column name, as in $LAST_NAME (${where(at)})`);
      out.push({ t: 'column', name: text.slice(i + 1, j), at });
      i = j;
      continue;
    }
    if (c === "'") {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw new ExpressionError(`unterminated string (${where(at)})`);
        if (text[j] === "'") {
          if (text[j + 1] === "'") {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        value += text[j];
        j++;
      }
      out.push({ t: 'string', value, at });
      i = j + 1;
      continue;
    }
    if (c === '"' || c === '`' || c === '[') {
      throw new ExpressionError(`unsupported: quoted names (${where(at)}); write a column as $NAME and a string in single quotes`);
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)/.exec(text.slice(i))!;
      const after = text[i + m[0].length] ?? '';
      if (/[eE]/.test(after)) throw new ExpressionError(`unsupported: numbers with an exponent (${where(at)})`);
      if (/[\p{L}_$.]/u.test(after)) throw new ExpressionError(`unexpected ${JSON.stringify(text.slice(i, i + m[0].length + 1))} (${where(at)})`);
      out.push({ t: 'number', text: m[0], integer: !m[0].includes('.'), at });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      out.push({ t: 'word', word: m[0], at });
      i += m[0].length;
      continue;
    }
    const unsupported = UNSUPPORTED_OPERATORS.find((op) => text.startsWith(op, i) && !OPERATORS.some((o) => o.length >= op.length && text.startsWith(o, i)));
    if (unsupported) throw new ExpressionError(`unsupported operator ${unsupported} (${where(at)})`);
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (!op) throw new ExpressionError(`unexpected character ${JSON.stringify(c)} (${where(at)})`);
    out.push({ t: 'op', op, at });
    i += op.length;
  }
  out.push({ t: 'end', at: text.length });
  return out;
}

function describe(tk: Token): string {
  switch (tk.t) {
    case 'column':
      return `$${tk.name}`;
    case 'string':
      return `'${tk.value}'`;
    case 'number':
      return tk.text;
    case 'word':
      return tk.word;
    case 'op':
      return tk.op;
    case 'end':
      return 'the end of the expression';
  }
}

/** Recursive descent over SQLite's precedence levels, lowest first: OR, AND, NOT, = and IS, < >, + -, * / %, ||, unary. */
class Parser {
  #tokens: Token[];
  #pos = 0;
  #depth = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens;
  }

  parse(): Expr {
    const e = this.#or();
    const tk = this.#peek();
    if (tk.t !== 'end') throw this.#unexpected(tk);
    return e;
  }

  #peek(): Token {
    return this.#tokens[this.#pos]!;
  }

  #next(): Token {
    return this.#tokens[this.#pos++]!;
  }

  #isWord(w: string): boolean {
    const tk = this.#peek();
    return tk.t === 'word' && tk.word.toLowerCase() === w;
  }

  #isOp(...ops: string[]): string | undefined {
    const tk = this.#peek();
    return tk.t === 'op' && ops.includes(tk.op) ? tk.op : undefined;
  }

  #expectWord(w: string): void {
    if (!this.#isWord(w)) throw this.#unexpected(this.#peek(), `expected ${w.toUpperCase()}`);
    this.#pos++;
  }

  #expectOp(op: string): void {
    if (!this.#isOp(op)) throw this.#unexpected(this.#peek(), `expected ${op}`);
    this.#pos++;
  }

  #unexpected(tk: Token, hint?: string): ExpressionError {
    if (tk.t === 'word' && UNSUPPORTED_WORDS.has(tk.word.toLowerCase())) {
      return new ExpressionError(`unsupported: ${tk.word.toUpperCase()} (${where(tk.at)})`);
    }
    return new ExpressionError(`unexpected ${describe(tk)} (${where(tk.at)})${hint ? `: ${hint}` : ''}`);
  }

  #nested<T>(f: () => T): T {
    if (++this.#depth > MAX_DEPTH) throw new ExpressionError('the expression is nested too deeply');
    try {
      return f();
    } finally {
      this.#depth--;
    }
  }

  #or(): Expr {
    return this.#nested(() => {
      let left = this.#and();
      while (this.#isWord('or')) {
        this.#pos++;
        left = { kind: 'binary', op: 'or', left, right: this.#and() };
      }
      return left;
    });
  }

  #and(): Expr {
    let left = this.#not();
    while (this.#isWord('and')) {
      this.#pos++;
      left = { kind: 'binary', op: 'and', left, right: this.#not() };
    }
    return left;
  }

  #not(): Expr {
    if (this.#isWord('not')) {
      this.#pos++;
      return this.#nested(() => ({ kind: 'not', operand: this.#not() }));
    }
    return this.#equality();
  }

  #equality(): Expr {
    let left = this.#comparison();
    for (;;) {
      const op = this.#isOp('=', '==', '!=', '<>');
      if (op) {
        this.#pos++;
        left = { kind: 'binary', op: op === '=' || op === '==' ? '=' : '<>', left, right: this.#comparison() };
      } else if (this.#isWord('is')) {
        this.#pos++;
        const negated = this.#isWord('not');
        if (negated) this.#pos++;
        if (!this.#isWord('null')) throw this.#unexpected(this.#peek(), 'IS is supported only as IS NULL or IS NOT NULL');
        this.#pos++;
        left = { kind: 'is-null', operand: left, negated };
      } else {
        return left;
      }
    }
  }

  #comparison(): Expr {
    let left = this.#additive();
    for (let op = this.#isOp('<', '<=', '>', '>='); op; op = this.#isOp('<', '<=', '>', '>=')) {
      this.#pos++;
      left = { kind: 'binary', op: op as BinaryOperator, left, right: this.#additive() };
    }
    return left;
  }

  #additive(): Expr {
    let left = this.#multiplicative();
    for (let op = this.#isOp('+', '-'); op; op = this.#isOp('+', '-')) {
      this.#pos++;
      left = { kind: 'binary', op: op as BinaryOperator, left, right: this.#multiplicative() };
    }
    return left;
  }

  #multiplicative(): Expr {
    let left = this.#concat();
    for (let op = this.#isOp('*', '/', '%'); op; op = this.#isOp('*', '/', '%')) {
      this.#pos++;
      left = { kind: 'binary', op: op as BinaryOperator, left, right: this.#concat() };
    }
    return left;
  }

  #concat(): Expr {
    let left = this.#unary();
    while (this.#isOp('||')) {
      this.#pos++;
      left = { kind: 'binary', op: '||', left, right: this.#unary() };
    }
    return left;
  }

  #unary(): Expr {
    const op = this.#isOp('-', '+');
    if (op) {
      this.#pos++;
      return this.#nested(() => {
        const operand = this.#unary();
        return op === '-' ? { kind: 'negate', operand } : operand;
      });
    }
    return this.#primary();
  }

  #primary(): Expr {
    const tk = this.#next();
    switch (tk.t) {
      case 'column':
        return { kind: 'column', name: tk.name };
      case 'string':
        return { kind: 'string', value: tk.value };
      case 'number':
        return { kind: 'number', text: tk.text, integer: tk.integer };
      case 'op':
        if (tk.op === '(') {
          const inner = this.#or();
          this.#expectOp(')');
          return inner;
        }
        throw this.#unexpected(tk);
      case 'end':
        throw this.#unexpected(tk, 'expected a value');
      case 'word':
        return this.#word(tk);
    }
  }

  #word(tk: Extract<Token, { t: 'word' }>): Expr {
    const w = tk.word.toLowerCase();
    if (w === 'null') return { kind: 'null' };
    if (w === 'case') return this.#nested(() => this.#case());
    if (this.#isOp('(')) {
      this.#pos++;
      return this.#nested(() => this.#call(tk, w));
    }
    if (KEYWORDS.has(w) || UNSUPPORTED_WORDS.has(w)) throw this.#unexpected(tk);
    throw new ExpressionError(`unsupported: the bare name ${tk.word} (${where(tk.at)}); write a column as $${tk.word} and a string in single quotes`);
  }

  #case(): Expr {
    const operand = this.#isWord('when') || this.#isWord('end') ? undefined : this.#or();
    const branches: { when: Expr; then: Expr }[] = [];
    while (this.#isWord('when')) {
      this.#pos++;
      const when = this.#or();
      this.#expectWord('then');
      branches.push({ when, then: this.#or() });
    }
    if (branches.length === 0) throw this.#unexpected(this.#peek(), 'expected WHEN');
    let otherwise: Expr | undefined;
    if (this.#isWord('else')) {
      this.#pos++;
      otherwise = this.#or();
    }
    this.#expectWord('end');
    return { kind: 'case', ...(operand ? { operand } : {}), branches, ...(otherwise ? { otherwise } : {}) };
  }

  #call(tk: Extract<Token, { t: 'word' }>, name: string): Expr {
    if (!(name in ARITY)) throw new ExpressionError(`unsupported function ${tk.word}() (${where(tk.at)})`);
    const fn = name as FunctionName;
    const args: Expr[] = [];
    if (!this.#isOp(')')) {
      for (;;) {
        args.push(this.#or());
        if (!this.#isOp(',')) break;
        this.#pos++;
      }
    }
    this.#expectOp(')');
    const [min, max] = ARITY[fn];
    if (args.length < min || args.length > max) {
      const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} or ${max}`;
      throw new ExpressionError(`${fn}() takes ${wanted} argument${min === 1 && max === 1 ? '' : 's'}, got ${args.length} (${where(tk.at)})`);
    }
    if (fn === 'datetime') {
      const a = args[0]!;
      if (a.kind !== 'string' || a.value.toLowerCase() !== 'now') {
        throw new ExpressionError(`unsupported: datetime() is supported only as datetime('now') (${where(tk.at)})`);
      }
    }
    if (fn === 'substr') checkSubstrArgs(args, tk.at);
    return { kind: 'call', name: fn, args };
  }
}

const INT4_MAX = 2147483647;

/** A constant integer (`3`, `-2`), or undefined for anything else. */
function constantInteger(e: Expr): number | undefined {
  if (e.kind === 'number' && e.integer) return Number(e.text);
  if (e.kind === 'negate' && e.operand.kind === 'number' && e.operand.integer) return -Number(e.operand.text);
  return undefined;
}

function isConstantNumber(e: Expr): boolean {
  return e.kind === 'number' || (e.kind === 'negate' && e.operand.kind === 'number');
}

function checkSubstrArgs(args: Expr[], at: number): void {
  for (const a of args.slice(1)) {
    if (isConstantNumber(a) && constantInteger(a) === undefined) {
      throw new ExpressionError(`substr() positions and lengths must be integers (${where(at)})`);
    }
    const n = constantInteger(a);
    if (n !== undefined && Math.abs(n) > INT4_MAX) throw new ExpressionError(`substr() position or length out of range (${where(at)})`);
  }
  const length = args[2] ? constantInteger(args[2]) : undefined;
  if (length !== undefined && length < 0) {
    throw new ExpressionError(`unsupported: a negative substr() length (${where(at)})`);
  }
}

export function parseExpression(text: string): ParseResult {
  if (text.length > MAX_LENGTH) return { ok: false, message: `the expression is longer than ${MAX_LENGTH} characters` };
  if (text.trim() === '') return { ok: false, message: 'the expression is empty' };
  try {
    return { ok: true, ast: new Parser(tokenize(text)).parse() };
  } catch (e) {
    if (e instanceof ExpressionError) return { ok: false, message: e.message };
    throw e;
  }
}

/** The columns an expression reads (`$NAME`), each once, in order of first use. */
export function referencedColumns(ast: Expr): string[] {
  const seen = new Set<string>();
  const walk = (e: Expr): void => {
    switch (e.kind) {
      case 'column':
        seen.add(e.name);
        return;
      case 'negate':
      case 'not':
      case 'is-null':
        return walk(e.operand);
      case 'binary':
        walk(e.left);
        return walk(e.right);
      case 'case':
        if (e.operand) walk(e.operand);
        for (const b of e.branches) {
          walk(b.when);
          walk(b.then);
        }
        if (e.otherwise) walk(e.otherwise);
        return;
      case 'call':
        return e.args.forEach(walk);
      default:
        return;
    }
  };
  walk(ast);
  return [...seen];
}

const TEXT_FUNCTIONS = new Set<FunctionName>(['upper', 'lower', 'substr', 'trim', 'replace', 'datetime']);

const COMPARISONS = new Set<BinaryOperator>(['=', '<>', '<', '<=', '>', '>=']);

/** Nodes that PostgreSQL types as boolean (SQLite gives 0 or 1). */
function isCondition(e: Expr): boolean {
  return e.kind === 'not' || e.kind === 'is-null' || (e.kind === 'binary' && (COMPARISONS.has(e.op) || e.op === 'and' || e.op === 'or'));
}

/**
 * PostgreSQL for an expression, with SQLite's semantics as described at the top of this file.
 * `column(name)` returns the SQL that reads the source column `$name` (already quoted); it is
 * the only way an identifier enters the result. Everything is parenthesized: SQLite's
 * precedence differs from PostgreSQL's (`||` binds tighter than `*` in SQLite).
 */
export function renderPostgres(ast: Expr, column: (name: string) => string): string {
  // What is text already needs no cast: literals, concatenations, and the string functions.
  const text = (e: Expr) =>
    e.kind === 'string' || (e.kind === 'binary' && e.op === '||') || (e.kind === 'call' && TEXT_FUNCTIONS.has(e.name)) ? value(e) : `CAST(${value(e)} AS text)`;
  const integerArg = (e: Expr) => (constantInteger(e) !== undefined ? String(constantInteger(e)) : `CAST(${value(e)} AS integer)`);

  function value(e: Expr): string {
    if (isCondition(e)) return `CAST(${condition(e)} AS integer)`;
    switch (e.kind) {
      case 'column':
        return column(e.name);
      case 'string':
        return quoteLiteral(e.value);
      case 'number':
        return e.text.startsWith('.') ? `0${e.text}` : e.text;
      case 'null':
        return 'NULL';
      case 'negate':
        return `(- ${value(e.operand)})`;
      case 'binary':
        if (e.op === '||') return `(${text(e.left)} || ${text(e.right)})`;
        if (e.op === '/' || e.op === '%') return `(${value(e.left)} ${e.op} NULLIF(${value(e.right)}, 0))`;
        return `(${value(e.left)} ${e.op} ${value(e.right)})`;
      case 'case':
        return caseExpr(e);
      case 'call':
        return call(e);
      default:
        throw new Error(`unreachable: ${e.kind} as a value`);
    }
  }

  function condition(e: Expr): string {
    switch (e.kind) {
      case 'not':
        return `(NOT ${condition(e.operand)})`;
      case 'is-null':
        return `(${value(e.operand)} IS ${e.negated ? 'NOT ' : ''}NULL)`;
      case 'binary':
        if (e.op === 'and' || e.op === 'or') return `(${condition(e.left)} ${e.op.toUpperCase()} ${condition(e.right)})`;
        if (COMPARISONS.has(e.op)) return `(${value(e.left)} ${e.op} ${value(e.right)})`;
        return `CAST(${value(e)} AS boolean)`;
      default:
        return `CAST(${value(e)} AS boolean)`;
    }
  }

  function caseExpr(e: Extract<Expr, { kind: 'case' }>): string {
    const parts = ['CASE'];
    if (e.operand) parts.push(value(e.operand));
    for (const b of e.branches) parts.push(`WHEN ${e.operand ? value(b.when) : condition(b.when)} THEN ${value(b.then)}`);
    if (e.otherwise) parts.push(`ELSE ${value(e.otherwise)}`);
    parts.push('END');
    return `(${parts.join(' ')})`;
  }

  function call(e: Extract<Expr, { kind: 'call' }>): string {
    const a = e.args;
    switch (e.name) {
      case 'upper':
      case 'lower':
        return `${e.name}(${text(a[0]!)})`;
      case 'length':
        return `char_length(${text(a[0]!)})`;
      case 'trim':
        return `btrim(${a.map(text).join(', ')})`;
      case 'replace':
        return `replace(${a.map(text).join(', ')})`;
      case 'coalesce':
      case 'ifnull':
        return `COALESCE(${a.map(value).join(', ')})`;
      case 'datetime':
        return `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')`;
      case 'substr':
        return substr(a[0]!, a[1]!, a[2]);
    }
  }

  /** SQLite counts a negative start from the end: position char_length + start + 1. */
  function substr(subject: Expr, start: Expr, length: Expr | undefined): string {
    const s = text(subject);
    const tail = length ? `, ${integerArg(length)}` : '';
    const n = constantInteger(start);
    if (n !== undefined) {
      return n >= 0 ? `substr(${s}, ${n}${tail})` : `substr(${s}, (char_length(${s}) - ${-n - 1})${tail})`;
    }
    const p = integerArg(start);
    return `(CASE WHEN ${p} < 0 THEN substr(${s}, (char_length(${s}) + ${p} + 1)${tail}) ELSE substr(${s}, ${p}${tail}) END)`;
  }

  return value(ast);
}

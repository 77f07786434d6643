import { describeKey, keyString, updateKeys, type ApplyTable, type RowChange } from '../../activities/apply/change';
import { isComplete, presentColumns, TableChanges } from '../../activities/apply/compact';
import { encodeCopyText } from '../../activities/apply/copy-text';
import { UNCHANGED, type ColumnValue, type Tuple } from '../../activities/apply/tuple';
import { formatLsn, parseLsn } from '../../activities/postgres/lsn';

const table: ApplyTable = { key: 's.t', schema: 's', name: 't', columns: ['id', 'a', 'b'], keyColumns: [0] };
const b = (s: string) => Buffer.from(s);
const row = (...vs: Array<string | null | typeof UNCHANGED>): Tuple => vs.map((v) => (typeof v === 'string' ? b(v) : v));
const text = (t: Tuple) => t.map((v: ColumnValue) => (v instanceof Buffer ? v.toString() : v));

let lsn = 0n;
const ins = (...vs: Array<string | null>): RowChange => ({ kind: 'insert', table, position: String(++lsn), new: row(...vs) });
const upd = (...vs: Array<string | null | typeof UNCHANGED>): RowChange => ({ kind: 'update', table, position: String(++lsn), new: row(...vs) });
const del = (id: string): RowChange => ({ kind: 'delete', table, position: String(++lsn), old: row(id, null, null) });

function compact(...changes: RowChange[]) {
  const tc = new TableChanges(table);
  for (const c of changes) tc.add(c);
  return { tc, entries: [...tc.entries.entries()].map(([k, e]) => [k, e.op, text(e.row)]) };
}

describe('compaction per key', () => {
  it('folds an insert and its updates into one upsert of the merged row', () => {
    const { entries, tc } = compact(ins('1', 'a', 'b'), upd('1', 'a2', UNCHANGED), upd('1', UNCHANGED, null));
    expect(entries).toEqual([['1', 'upsert', ['1', 'a2', null]]]);
    expect(tc.changes).toHaveLength(3);
  });

  it('merges updates: later values win, an unchanged later value keeps the earlier present one', () => {
    const { entries } = compact(upd('1', 'x', UNCHANGED), upd('1', UNCHANGED, 'y'), upd('1', 'z', UNCHANGED));
    expect(entries).toEqual([['1', 'update', ['1', 'z', 'y']]]);
    expect(compact(upd('1', UNCHANGED, UNCHANGED)).entries).toEqual([['1', 'update', ['1', UNCHANGED, UNCHANGED]]]);
  });

  it('ends in a delete whatever came before, and a delete then insert is an upsert of the new row', () => {
    expect(compact(ins('1', 'a', 'b'), upd('1', 'c', 'd'), del('1')).entries).toEqual([['1', 'delete', ['1', null, null]]]);
    expect(compact(upd('1', 'c', 'd'), del('1')).entries).toEqual([['1', 'delete', ['1', null, null]]]);
    expect(compact(del('1'), ins('1', 'n', null)).entries).toEqual([['1', 'upsert', ['1', 'n', null]]]);
    expect(compact(upd('1', 'c', UNCHANGED), ins('1', 'n', 'm')).entries).toEqual([['1', 'upsert', ['1', 'n', 'm']]]);
  });

  it('counts updates after a delete of their key as misses and keeps the delete', () => {
    const { entries, tc } = compact(del('1'), upd('1', 'a', 'b'), upd('1', 'c', 'd'));
    expect(entries).toEqual([['1', 'delete', ['1', null, null]]]);
    expect(tc.missedUpdates).toBe(2);
  });

  it('keeps keys apart and in first-seen order, and never changes the original tuples', () => {
    const changes = [ins('1', 'a', 'b'), upd('2', 'x', UNCHANGED), upd('2', UNCHANGED, 'y'), del('3')];
    const first = changes[1]!;
    const { entries, tc } = compact(...changes);
    expect(entries.map((e) => [e[0], e[1]])).toEqual([['1', 'upsert'], ['2', 'update'], ['3', 'delete']]);
    expect(text((first as { new: Tuple }).new)).toEqual(['2', 'x', UNCHANGED]);
    expect(tc.changes).toEqual(changes);
  });

  it('leaves key changes out (applied alone) and refuses inserts with unchanged TOAST', () => {
    const tc = new TableChanges(table);
    expect(tc.add({ kind: 'update', table, position: '1', old: row('1', null, null), new: row('2', 'a', 'b') })).toBe(false);
    expect(tc.add({ kind: 'update', table, position: '2', old: row('1', null, null), new: row('1', 'a', 'b') })).toBe(true);
    expect([...tc.entries.keys()]).toEqual(['1']);
    expect(tc.changes.map((c) => c.position)).toEqual(['2']);
    expect(() => compact({ kind: 'insert', table, position: '1', new: row('1', UNCHANGED, 'b') })).toThrow(/unchanged TOAST/);
  });
});

describe('keys', () => {
  const two: ApplyTable = { key: 's.two', schema: 's', name: 'two', columns: ['a', 'x', 'b'], keyColumns: [0, 2] };

  it('keeps multi-column keys apart however the bytes split', () => {
    expect(keyString([b('a,b'), b('c')])).not.toBe(keyString([b('a'), b('b,c')]));
    expect(keyString([b('1'), b('22')])).not.toBe(keyString([b('12'), b('2')]));
  });

  it('takes an unchanged TOAST key column from old, and sees a key change only when a value differs', () => {
    expect(updateKeys({ kind: 'update', table: two, position: '1', new: row('a', 'x', 'b') })).toEqual({ key: [b('a'), b('b')] });
    const toasted = updateKeys({ kind: 'update', table: two, position: '1', old: row('a', null, 'b'), new: row('a', 'x', UNCHANGED) });
    expect(toasted).toEqual({ key: [b('a'), b('b')] });
    const moved = updateKeys({ kind: 'update', table: two, position: '1', old: row('a', null, 'b'), new: row('a', 'x', 'c') });
    expect(moved).toEqual({ key: [b('a'), b('b')], newKey: [b('a'), b('c')] });
    const full = updateKeys({ kind: 'update', table: two, position: '1', old: row('a', 'old', 'b'), new: row('a', 'x', 'b') });
    expect(full).toEqual({ key: [b('a'), b('b')] });
    expect(() => updateKeys({ kind: 'update', table: two, position: '1', new: row('a', 'x', UNCHANGED) })).toThrow(/unchanged TOAST/);
    expect(() => updateKeys({ kind: 'update', table: two, position: '1', new: row(null, 'x', 'b') })).toThrow(/NULL/);
  });

  it('describes keys as PostgreSQL does, quoting names that need it', () => {
    const t: ApplyTable = { key: 'x', schema: 's', name: 't', columns: ['Id', 'code'], keyColumns: [0, 1] };
    expect(describeKey(t, [b('5'), b('a b')])).toBe('("Id", code)=(5, a b)');
  });

  it('finds present columns', () => {
    expect(presentColumns(row('1', UNCHANGED, null))).toEqual([0, 2]);
    expect(isComplete(row('1', null))).toBe(true);
    expect(isComplete(row('1', UNCHANGED))).toBe(false);
  });
});

describe('COPY text encoding', () => {
  it('escapes backslash, tab, newline and carriage return, and writes NULL as \\N', () => {
    const out = encodeCopyText([row('a\tb', 'c\nd\re', 'back\\slash', null, ''), row('ü "q"', '\\N', null, 'x', 'y')]);
    expect(out.toString()).toBe('a\\tb\tc\\nd\\re\tback\\\\slash\t\\N\t\n' + 'ü "q"\t\\\\N\t\\N\tx\ty\n');
  });

  it('writes the chosen positions only, across many chunks', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => row(String(i), 'v'.repeat(i % 300), String(-i)));
    const out = encodeCopyText(rows, [2, 0]).toString();
    expect(out.split('\n')).toHaveLength(5001);
    expect(out.startsWith('0\t0\n-1\t1\n')).toBe(true);
    expect(out.endsWith('-4999\t4999\n')).toBe(true);
  });

  it('refuses unchanged TOAST (it has no value)', () => {
    expect(() => encodeCopyText([row('1', UNCHANGED)])).toThrow(/unchanged/);
  });
});

describe('LSN text', () => {
  it('formats and parses like PostgreSQL', () => {
    expect(formatLsn(0x16b3748n)).toBe('0/16B3748');
    expect(formatLsn((0xabn << 32n) | 0xffn)).toBe('AB/FF');
    expect(parseLsn('AB/FF')).toBe((0xabn << 32n) | 0xffn);
    expect(parseLsn(formatLsn(123456789012345n))).toBe(123456789012345n);
  });
});

import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { ChangeApplier, type ApplierOptions, type ApplyTable, type Change } from '../../activities/apply/apply';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { UNCHANGED, type Tuple } from '../../activities/apply/tuple';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { pgPosition as pos } from '../../activities/postgres/position';

/**
 * The change applier against a real target: the same random history applied with plain SQL
 * to one table and as Changes through the applier to another must leave them equal, whatever
 * the buffer size, and again when the history is replayed over its own result.
 */
describe('CDC change applier', () => {
  const db = uniqueName('cdc_apply');
  let url: string;

  beforeAll(async () => {
    url = await createDatabase('target', db);
  });

  afterAll(async () => {
    await dropDatabase('target', db);
  });

  // ---------------------------------------------------------------- helpers

  const buf = (v: string | null): Buffer | null => (v === null ? null : Buffer.from(v));

  /**
   * Applies changes in transactions of `commitEvery` changes, as the CDC activity does, with an
   * extra flush (no commit) every `flushEvery` changes.
   */
  async function apply(changes: Change[], opts: ApplierOptions & { commitEvery?: number; flushEvery?: number } = {}) {
    return withClient(url, async (c) => {
      await c.query('SET session_replication_role = replica');
      const applier = new ChangeApplier(c, opts);
      await c.query('BEGIN');
      let n = 0;
      for (const change of changes) {
        await applier.add(change);
        n++;
        if (opts.commitEvery && n % opts.commitEvery === 0) {
          await applier.flush();
          await c.query('COMMIT');
          await c.query('BEGIN');
        } else if (opts.flushEvery && n % opts.flushEvery === 0) {
          await applier.flush();
        }
      }
      await applier.flush();
      await c.query('COMMIT');
      return applier.stats;
    });
  }

  async function digest(c: Client, table: string, key: string): Promise<{ rows: number; md5: string }> {
    const r = await c.query(`SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, ',' ORDER BY t.${key}), '')) AS md5 FROM ${table} t`);
    return r.rows[0];
  }

  /** A small seeded PRNG (mulberry32): a failing history can be replayed from its seed. */
  function prng(seed: number) {
    let a = seed >>> 0;
    const next = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]! };
  }

  const NASTY = ['plain', 'tab\there', 'new\nline', 'carriage\rreturn', 'back\\slash', '\\N', '\\.', 'ünï €𝄞', `quote' "dq"`, '', ' spaced '];

  // ---------------------------------------------------------------- a random history

  const COLUMNS = ['id', 'Name', 'big', 'n', 'tags', 'at', 'flag'];
  const RETURNING = 'RETURNING id::text, "Name", big, n::text, tags::text, at::text, flag::text';
  const createT = (name: string) => `
    CREATE TABLE ${name} (id int PRIMARY KEY, "Name" text, big text, n numeric(12,2), tags text[], at timestamptz, flag boolean NOT NULL DEFAULT false);
    ALTER TABLE ${name} ALTER big SET STORAGE EXTERNAL;`;

  interface History {
    changes: Change[];
    /** Source digest after the history. */
    expected: { rows: number; md5: string };
  }

  /**
   * Runs `steps` random statements on `src` one by one and returns them as the Changes pgoutput
   * would send for `dst`: values are the source's text forms (RETURNING ::text), big values are
   * stored out of line, and an update that leaves `big` alone often sends it as unchanged TOAST.
   */
  async function randomHistory(seed: number, steps: number, dst: ApplyTable): Promise<History> {
    const r = prng(seed);
    const changes: Change[] = [];
    let lsn = 0x1_0000_0000n;
    const ids = new Set<number>();
    const value = () => (r.next() < 0.15 ? null : r.pick(NASTY) + (r.next() < 0.5 ? String(r.int(1000)) : ''));
    const big = () => {
      if (r.next() < 0.2) return null;
      const len = r.next() < 0.5 ? 5 + r.int(20) : 3000 + r.int(6000);
      let s = r.pick(NASTY);
      while (s.length < len) s += Math.floor(r.next() * 2 ** 32).toString(36);
      return s;
    };
    const number = () => (r.next() < 0.1 ? null : (r.int(2_000_000) / 100 - 10_000).toFixed(2));
    const tags = () => (r.next() < 0.2 ? null : [r.pick(NASTY), r.next() < 0.3 ? null : r.pick(NASTY)]);
    const at = () => (r.next() < 0.2 ? null : new Date(Date.UTC(2020, 0, 1) + r.int(10 ** 11)).toISOString());
    const freeId = () => {
      for (;;) {
        const id = 1 + r.int(400);
        if (!ids.has(id)) return id;
      }
    };
    const tuple = (row: Record<string, string | null>): Tuple => Object.values(row).map((v) => buf(v));
    const keyOnly = (id: number): Tuple => [buf(String(id)), null, null, null, null, null, null];

    await withClient(url, async (c) => {
      for (let step = 0; step < steps; step++) {
        lsn += BigInt(1 + r.int(5000));
        const roll = r.next();
        const existing = [...ids];
        if (roll < 0.01) {
          await c.query('TRUNCATE src');
          ids.clear();
          changes.push({ kind: 'truncate', tables: [dst], position: pos(lsn), restartIdentity: r.next() < 0.5 });
        } else if (roll < 0.3 || existing.length < 5) {
          const id = freeId();
          const q = await c.query(`INSERT INTO src VALUES ($1, $2, $3, $4, $5, $6, $7) ${RETURNING}`, [id, value(), big(), number(), tags(), at(), r.next() < 0.5]);
          ids.add(id);
          changes.push({ kind: 'insert', table: dst, position: pos(lsn), new: tuple(q.rows[0]) });
        } else if (roll < 0.45) {
          const id = r.pick(existing);
          await c.query('DELETE FROM src WHERE id = $1', [id]);
          ids.delete(id);
          changes.push({ kind: 'delete', table: dst, position: pos(lsn), old: keyOnly(id) });
        } else {
          const id = r.pick(existing);
          const sets: string[] = [];
          const vals: unknown[] = [id];
          const set = (col: string, v: unknown) => {
            vals.push(v);
            sets.push(`${quoteIdent(col)} = $${vals.length}`);
          };
          const move = r.next() < 0.12;
          const newId = move ? freeId() : id;
          if (move) set('id', newId);
          if (r.next() < 0.5) set('Name', value());
          const bigChanged = r.next() < 0.2;
          if (bigChanged) set('big', big());
          if (r.next() < 0.5) set('n', number());
          if (r.next() < 0.2) set('tags', tags());
          if (r.next() < 0.2) set('at', at());
          if (r.next() < 0.2 || sets.length === 0) set('flag', r.next() < 0.5);
          const q = await c.query(`UPDATE src SET ${sets.join(', ')} WHERE id = $1 ${RETURNING}`, vals);
          const row: Tuple = tuple(q.rows[0]);
          if (!bigChanged && r.next() < 0.7) row[2] = UNCHANGED;
          if (move) {
            ids.delete(id);
            ids.add(newId);
          }
          changes.push({ kind: 'update', table: dst, position: pos(lsn), new: row, ...(move ? { old: keyOnly(id) } : {}) });
        }
      }
    });
    const expected = await withClient(url, (c) => digest(c, 'src', 'id'));
    return { changes, expected };
  }

  const dstTable: ApplyTable = { key: 'public.dst', schema: 'public', name: 'dst', columns: COLUMNS, keyColumns: [0] };

  it('leaves the target equal to a source the same random history ran on, for any buffer size', async () => {
    await withClient(url, (c) => c.query(createT('src') + createT('dst')));
    const seed = Number(process.env.DBFERRY_APPLY_SEED ?? Date.now() % 100000);
    const { changes, expected } = await randomHistory(seed, 2500, dstTable);
    expect(changes.some((c) => c.kind === 'update' && c.old)).toBe(true);
    expect(changes.some((c) => c.kind === 'update' && c.new.includes(UNCHANGED))).toBe(true);
    for (const maxRows of [1, 7, 100, 100_000]) {
      await withClient(url, (c) => c.query('TRUNCATE dst'));
      const stats = await apply(changes, { maxRows, commitEvery: 331, flushEvery: 97 });
      const got = await withClient(url, (c) => digest(c, 'dst', 'id'));
      expect({ seed, maxRows, ...got }).toEqual({ seed, maxRows, ...expected });
      expect(stats.changes).toBe(changes.length);
    }

    // Replays converge: the whole history again over its own result, then its second half.
    await apply(changes, { maxRows: 500 });
    expect(await withClient(url, (c) => digest(c, 'dst', 'id'))).toEqual(expected);
    for (const from of [changes.length >> 1, Math.floor(changes.length * 0.8)]) {
      await apply(changes.slice(from), { maxRows: 7 });
      expect({ seed, from, ...(await withClient(url, (c) => digest(c, 'dst', 'id'))) }).toEqual({ seed, from, ...expected });
    }
  });

  // ---------------------------------------------------------------- focused cases

  const t = (schema: string, name: string, columns: string[], keyColumns = [0]): ApplyTable => ({ key: `${schema}.${name}`, schema, name, columns, keyColumns });
  const row = (...vs: Array<string | null | typeof UNCHANGED>): Tuple => vs.map((v) => (v === UNCHANGED ? UNCHANGED : buf(v)));
  let lsn = 0x2_0000_0000n;
  const ins = (table: ApplyTable, ...vs: Array<string | null>): Change => ({ kind: 'insert', table, position: pos(++lsn), new: row(...vs) });
  const upd = (table: ApplyTable, ...vs: Array<string | null | typeof UNCHANGED>): Change => ({ kind: 'update', table, position: pos(++lsn), new: row(...vs) });
  const del = (table: ApplyTable, ...key: string[]): Change => ({
    kind: 'delete',
    table,
    position: pos(++lsn),
    old: table.columns.map((_, i) => (table.keyColumns.includes(i) ? buf(key[table.keyColumns.indexOf(i)]!) : null)),
  });
  const rows = (c: Client, sql: string) => c.query(sql).then((r) => r.rows);

  it('falls back to one-by-one when a secondary unique constraint needs the original order', async () => {
    const u = t('public', 'uniq', ['id', 'code', 'note']);
    await withClient(url, (c) => c.query(`CREATE TABLE uniq (id int PRIMARY KEY, code text UNIQUE, note text); INSERT INTO uniq VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z')`));
    const other = t('public', 'other', ['id', 'v']);
    await withClient(url, (c) => c.query('CREATE TABLE other (id int PRIMARY KEY, v text)'));
    // 1 and 2 swap codes through a temporary value; compacted, they collide in one UPDATE.
    const changes = [
      ins(other, '1', 'kept'),
      upd(u, '1', 'tmp', UNCHANGED),
      upd(u, '2', 'a', UNCHANGED),
      upd(u, '1', 'b', 'x2'),
      del(u, '3'),
      ins(u, '4', 'c', 'w'),
      ins(other, '2', 'kept too'),
    ];
    const stats = await apply(changes, { maxRows: 1000 });
    expect(stats.fallbacks).toBe(1);
    await withClient(url, async (c) => {
      expect(await rows(c, 'SELECT id, code, note FROM uniq ORDER BY id')).toEqual([
        { id: 1, code: 'b', note: 'x2' },
        { id: 2, code: 'a', note: 'y' },
        { id: 4, code: 'c', note: 'w' },
      ]);
      expect(await rows(c, 'SELECT id, v FROM other ORDER BY id')).toEqual([{ id: 1, v: 'kept' }, { id: 2, v: 'kept too' }]);
    });
  });

  it('keeps the stored value of unchanged TOAST columns, alone and merged in a buffer', async () => {
    const tt = t('public', 'toasty', ['id', 'doc', 'n']);
    const big = 'x'.repeat(50_000) + 'ü';
    await withClient(url, async (c) => {
      await c.query('CREATE TABLE toasty (id int PRIMARY KEY, doc text NOT NULL, n int)');
      await c.query('INSERT INTO toasty SELECT g, $1 || g, 0 FROM generate_series(1, 3) g', [big]);
    });
    for (const maxRows of [1, 1000]) {
      await apply([upd(tt, '1', UNCHANGED, '1'), upd(tt, '2', UNCHANGED, '1'), upd(tt, '2', UNCHANGED, '2'), upd(tt, '3', 'small', '1'), upd(tt, '3', UNCHANGED, '2')], { maxRows });
      const md5 = (v: string) => createHash('md5').update(v).digest('hex');
      expect(await withClient(url, (c) => rows(c, 'SELECT id, md5(doc) AS doc, n FROM toasty ORDER BY id'))).toEqual([
        { id: 1, doc: md5(big + '1'), n: 1 },
        { id: 2, doc: md5(big + '2'), n: 2 },
        { id: 3, doc: md5('small'), n: 2 },
      ]);
    }
  });

  it('works with hostile identifiers, composite keys, key changes and truncates', async () => {
    const schema = 'Sales Ü';
    const name = 'Order "Items"';
    const cols = ['Order Id', 'line"no', 'select', 'Ünïcode Name', 'with\ttab'];
    const table = qualifiedTable(schema, name);
    const q = cols.map(quoteIdent);
    await withClient(url, (c) =>
      c.query(`CREATE SCHEMA ${quoteIdent(schema)};
        CREATE TABLE ${table} (${q[0]} int, ${q[1]} text, ${q[2]} text, ${q[3]} text, ${q[4]} int GENERATED BY DEFAULT AS IDENTITY, PRIMARY KEY (${q[0]}, ${q[1]}));
        CREATE TABLE ${qualifiedTable(schema, 'select')} (${quoteIdent('Id')} int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${quoteIdent('from')} text)`),
    );
    const items = t(schema, name, cols, [0, 1]);
    const sel = t(schema, 'select', ['Id', 'from']);
    const move = (table: ApplyTable, old: Tuple, now: Tuple): Change => ({ kind: 'update', table, position: pos(++lsn), old, new: now });
    for (const maxRows of [1, 1000]) {
      await apply([
        ins(items, '1', 'a', 'x', 'ü', '1'),
        ins(items, '1', 'b', 'y', null, '2'),
        ins(items, '2', 'a"b', 'z', 'ß', '3'),
        upd(items, '1', 'a', 'x2', UNCHANGED, '1'),
        move(items, row('1', 'b', null, null, null), row('1', 'c', 'y2', UNCHANGED, '2')),
        del(items, '2', 'a"b'),
        ins(sel, '10', 'first'),
        ins(sel, '11', 'second'),
        move(sel, row('10', null), row('12', 'moved')),
        upd(sel, '11', 'second!'),
        { kind: 'truncate', tables: [sel], position: pos(++lsn), restartIdentity: true },
        ins(sel, '20', 'after'),
      ], { maxRows });
      await withClient(url, async (c) => {
        expect(await rows(c, `SELECT ${q.join(', ')} FROM ${table} ORDER BY 1, 2`)).toEqual([
          { 'Order Id': 1, 'line"no': 'a', select: 'x2', 'Ünïcode Name': 'ü', 'with\ttab': 1 },
          { 'Order Id': 1, 'line"no': 'c', select: 'y2', 'Ünïcode Name': null, 'with\ttab': 2 },
        ]);
        expect(await rows(c, `SELECT * FROM ${qualifiedTable(schema, 'select')}`)).toEqual([{ Id: 20, from: 'after' }]);
      });
    }
  });

  it('names the table, the key and the LSN of a change the target refuses', async () => {
    const strict = t('public', 'strict', ['id', 'v', 'n']);
    await withClient(url, (c) => c.query('CREATE TABLE strict (id int PRIMARY KEY, v text NOT NULL, n int CHECK (n >= 0))'));
    const good = Array.from({ length: 100 }, (_, i) => ins(strict, String(i), 'ok', String(i)));
    const badCheck = upd(strict, '57', 'ok', '-1');
    const badNull = ins(strict, '1000', null, '1');
    const cases = [
      { changes: [...good, badCheck, ...good.slice(0, 10)], culprit: badCheck, key: '(id)=(57)', why: /check constraint/ },
      { changes: [badNull], culprit: badNull, key: '(id)=(1000)', why: /not-null/ },
    ];
    for (const { changes, culprit, key, why } of cases) {
      for (const maxRows of [1, 1000]) {
        const err: unknown = await apply(changes, { maxRows }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(ApplicationFailure);
        const f = err as ApplicationFailure;
        expect(f.type).toBe('DataError');
        expect(f.nonRetryable).toBe(true);
        const lsnText = culprit.position;
        expect(f.message).toContain('public.strict');
        expect(f.message).toContain(key);
        expect(f.message).toContain(`at ${lsnText}`);
        expect(f.message).toMatch(why);
      }
    }
    // A table or column the target lacks is named before anything is applied.
    for (const [table, why] of [
      [t('public', 'nowhere', ['id']), /public\.nowhere does not exist on the target/],
      [t('public', 'strict', ['id', 'v', 'gone']), /public\.strict has no column "gone" on the target/],
    ] as const) {
      const err: unknown = await apply([ins(table, '1', 'a', 'b')]).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).message).toMatch(why);
    }
    // Nothing of the refused transactions stayed.
    expect(await withClient(url, (c) => rows(c, 'SELECT count(*)::int AS n FROM strict'))).toEqual([{ n: 0 }]);
  });

  it('carries out foreign-key actions the source did not send (MySQL), in source order, also where the parent is missing', async () => {
    await withClient(url, (c) =>
      c.query(`CREATE TABLE fk_parent (id int PRIMARY KEY, code text UNIQUE, v text);
               CREATE TABLE fk_child (id int PRIMARY KEY, parent_id int REFERENCES fk_parent (id) ON DELETE CASCADE,
                                      parent_code text REFERENCES fk_parent (code) ON UPDATE CASCADE ON DELETE SET NULL, note text);
               INSERT INTO fk_parent VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z');
               INSERT INTO fk_child VALUES (10, 1, 'b', 'n'), (11, 2, 'a', 'n'), (12, 2, 'c', 'n'), (13, 3, NULL, 'n');
               -- A child whose parent the target does not have (loaded before the parent's delete, the parent after).
               SET session_replication_role = replica; INSERT INTO fk_child VALUES (14, 4, NULL, 'orphan'); SET session_replication_role = origin;`),
    );
    const { RelationTracker } = await import('../../activities/apply/relations');
    const parentModel = { schema: 'public', name: 'fk_parent', columns: ['id', 'code', 'v'].map((n) => ({ name: n, type: n === 'id' ? 'integer' : 'text', notNull: n === 'id', binaryCopySafe: true })), primaryKey: { name: 'p', definition: 'PRIMARY KEY (id)', columns: ['id'] }, uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [], estimatedRows: '0', estimatedBytes: '0' };
    const childModel = { ...parentModel, name: 'fk_child', columns: ['id', 'parent_id', 'parent_code', 'note'].map((n) => ({ name: n, type: n.endsWith('id') ? 'integer' : 'text', notNull: n === 'id', binaryCopySafe: true })) };
    const rel = (id: number, m: typeof parentModel) => ({ id, schema: 'public', name: m.name, fullIdentity: false, columns: m.columns.map((x) => ({ name: x.name, type: x.type, notNull: x.notNull, volatileDefault: false })) });
    const row = (...v: Array<string | null>) => v.map(buf);
    await withClient(url, async (c) => {
      await c.query('SET session_replication_role = replica');
      const tracker = new RelationTracker(c, new Map([['public.fk_parent', parentModel], ['public.fk_child', childModel]]) as never, true);
      await tracker.learn(rel(1, parentModel), async () => {});
      await tracker.learn(rel(2, childModel), async () => {});
      const parent = tracker.table(1)!;
      const child = tracker.table(2)!;
      expect(parent.foreignKeyActions?.map((a) => [a.child, a.onDelete, a.onUpdate])).toEqual(
        expect.arrayContaining([['"public"."fk_child"', 'cascade', undefined], ['"public"."fk_child"', 'set null', 'cascade']]),
      );
      const applier = new ChangeApplier(c);
      await c.query('BEGIN');
      // In one transaction, as the binlog has it: a child added, then its parent deleted (the
      // source's cascade took the new child too); a referenced code renamed; the missing parent deleted.
      await applier.add({ kind: 'insert', table: child, position: pos('0/1'), new: row('15', '1', null, 'new') });
      await applier.add({ kind: 'delete', table: parent, position: pos('0/2'), old: row('1', 'a', 'x') });
      await applier.add({ kind: 'update', table: parent, position: pos('0/3'), old: row('3', 'c', 'z'), new: row('3', 'c2', 'z') });
      await applier.add({ kind: 'delete', table: parent, position: pos('0/4'), old: row('4', 'd', 'w') });
      await applier.add({ kind: 'update', table: child, position: pos('0/5'), old: row('13', '3', null, 'n'), new: row('13', '3', null, 'later') });
      await applier.flush();
      await c.query('COMMIT');
      const rows = await c.query('SELECT id, parent_id, parent_code, note FROM fk_child ORDER BY id');
      expect(rows.rows).toEqual([
        { id: 11, parent_id: 2, parent_code: null, note: 'n' }, // its code 'a' went with parent 1: SET NULL
        { id: 12, parent_id: 2, parent_code: 'c2', note: 'n' }, // ON UPDATE CASCADE
        { id: 13, parent_id: 3, parent_code: null, note: 'later' },
      ]);
      expect((await c.query('SELECT id FROM fk_parent ORDER BY id')).rows).toEqual([{ id: 2 }, { id: 3 }]);
    });
  });

  it('changes a referenced key in place where foreign keys act (MySQL): the children follow ON UPDATE, not ON DELETE', async () => {
    await withClient(url, (c) =>
      c.query(`CREATE TABLE fk2_parent (id int PRIMARY KEY, v text);
               CREATE TABLE fk2_child (id int PRIMARY KEY, pid int REFERENCES fk2_parent (id) ON UPDATE CASCADE ON DELETE CASCADE);
               INSERT INTO fk2_parent VALUES (10, 'a'), (11, 'taken');
               INSERT INTO fk2_child VALUES (1, 10), (2, 10), (3, 11);`),
    );
    const { RelationTracker } = await import('../../activities/apply/relations');
    const model = (name: string, cols: string[]) => ({ schema: 'public', name, columns: cols.map((n) => ({ name: n, type: n === 'v' ? 'text' : 'integer', notNull: n === 'id', binaryCopySafe: true })), primaryKey: { name: 'p', definition: 'PRIMARY KEY (id)', columns: ['id'] }, uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [], estimatedRows: '0', estimatedBytes: '0' });
    const parentModel = model('fk2_parent', ['id', 'v']);
    const rel = { id: 1, schema: 'public', name: 'fk2_parent', fullIdentity: false, columns: parentModel.columns.map((x) => ({ name: x.name, type: x.type, notNull: x.notNull, volatileDefault: false })) };
    await withClient(url, async (c) => {
      await c.query('SET session_replication_role = replica');
      const tracker = new RelationTracker(c, new Map([['public.fk2_parent', parentModel], ['public.fk2_child', model('fk2_child', ['id', 'pid'])]]) as never, true);
      await tracker.learn(rel, async () => {});
      const parent = tracker.table(1)!;
      const applier = new ChangeApplier(c);
      await c.query('BEGIN');
      await applier.add({ kind: 'update', table: parent, position: pos('0/1'), old: [buf('10'), buf('a')], new: [buf('20'), buf('a')] });
      // A replay: the old key is gone, the new one loaded already (with its children).
      await applier.add({ kind: 'update', table: parent, position: pos('0/2'), old: [buf('12'), buf('gone')], new: [buf('11'), buf('b')] });
      await applier.flush();
      await c.query('COMMIT');
      expect((await c.query('SELECT id, pid FROM fk2_child ORDER BY id')).rows).toEqual([
        { id: 1, pid: 20 },
        { id: 2, pid: 20 },
        { id: 3, pid: 11 },
      ]);
      expect((await c.query('SELECT id, v FROM fk2_parent ORDER BY id')).rows).toEqual([
        { id: 11, v: 'b' },
        { id: 20, v: 'a' },
      ]);
    });
  });

  it('counts updates of missing rows and skips them', async () => {
    const m = t('public', 'missing', ['id', 'v']);
    await withClient(url, (c) => c.query(`CREATE TABLE missing (id int PRIMARY KEY, v text); INSERT INTO missing VALUES (1, 'a')`));
    for (const maxRows of [1, 1000]) {
      const stats = await apply([upd(m, '1', 'b'), upd(m, '2', 'x'), upd(m, '3', 'y'), del(m, '1'), upd(m, '1', 'c')], { maxRows });
      expect(stats.missedUpdates).toBe(3);
      expect(await withClient(url, (c) => rows(c, 'SELECT * FROM missing'))).toEqual([]);
      await withClient(url, (c) => c.query(`INSERT INTO missing VALUES (1, 'a')`));
    }
  });

  // ---------------------------------------------------------------- throughput (printed, not asserted)
  // Inside jest, whose module sandbox slows this kind of code 2-3x: bench/cdc-apply-bench.ts
  // measures the same outside it.

  it('measures throughput: a 200,000-row update transaction and a stream of small transactions', async () => {
    const accounts = t('public', 'accounts', ['aid', 'bid', 'abalance', 'filler']);
    const history = t('public', 'history', ['hid', 'tid', 'bid', 'aid', 'delta', 'mtime', 'filler']);
    const N = Number(process.env.DBFERRY_APPLY_BENCH_ACCOUNTS ?? 1_000_000);
    const U = Number(process.env.DBFERRY_APPLY_BENCH_ROWS ?? 200_000);
    await withClient(url, async (c) => {
      await c.query(`CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
        INSERT INTO accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, ${N}) g;
        CREATE TABLE history (hid bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))`);
      await c.query('VACUUM ANALYZE accounts');
    });
    const filler = Buffer.from(' '.repeat(84));
    const r = prng(42);
    const accountRow = (aid: number): Tuple => [Buffer.from(String(aid)), Buffer.from(String(Math.ceil(aid / 100000))), Buffer.from(String(r.int(10000) - 5000)), filler];
    // One UPDATE statement's rows come in table order (here key order); rows picked at random are the worst case.
    for (const [label, count, aidOf] of [
      ['one UPDATE statement', U, (i: number) => 1 + i],
      ['rows at random', U >> 2, () => 1 + r.int(N)],
    ] as const) {
      // Built up front: the decoder's cost is not the applier's.
      const changes: Change[] = Array.from({ length: count }, (_, i) => ({ kind: 'update', table: accounts, position: pos(BigInt(i)), new: accountRow(aidOf(i)) }));
      const t0 = process.hrtime.bigint();
      const stats = await apply(changes);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      console.log(`cdc apply: a ${count}-row update transaction (${label}) on a ${N}-row table: ${Math.round(count / (ms / 1000))} rows/s (${ms.toFixed(0)} ms, ${stats.batches} buffers)`);
    }

    // pgbench's transaction: one accounts update and one history insert, committed in groups as the CDC loop does.
    const historyRow = (i: number, aid: number): Tuple => [
      ...[i + 1, 1 + (i % 10), 1, aid, r.int(10000) - 5000].map((v) => Buffer.from(String(v))),
      Buffer.from('2024-05-01 12:00:00.123456'),
      null,
    ];
    const txs = Number(process.env.DBFERRY_APPLY_BENCH_TXS ?? 30_000);
    const perCommit = 300; // ~85 ms of a 3,500 tx/s stream
    const small: Change[] = [];
    for (let i = 0; i < txs; i++) {
      const aid = 1 + r.int(N);
      small.push({ kind: 'update', table: accounts, position: pos(BigInt(i)), new: accountRow(aid) });
      small.push({ kind: 'insert', table: history, position: pos(BigInt(i)), new: historyRow(i, aid) });
    }
    const latencies: number[] = [];
    const t1 = process.hrtime.bigint();
    await withClient(url, async (c) => {
      await c.query('SET session_replication_role = replica');
      const applier = new ChangeApplier(c);
      for (let i = 0; i < small.length; i += 2 * perCommit) {
        const start = process.hrtime.bigint();
        await c.query('BEGIN');
        for (const change of small.slice(i, i + 2 * perCommit)) await applier.add(change);
        await applier.flush();
        await c.query('COMMIT');
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    });
    const ms2 = Number(process.hrtime.bigint() - t1) / 1e6;
    latencies.sort((a, b) => a - b);
    console.log(
      `cdc apply: ${txs} small transactions (update + insert), committed every ${perCommit}: ${Math.round(txs / (ms2 / 1000))} tx/s, ` +
        `${Math.round(small.length / (ms2 / 1000))} changes/s; per commit of ${perCommit} tx: median ${latencies[latencies.length >> 1]!.toFixed(1)} ms, ` +
        `p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(1)} ms`,
    );
    expect(await withClient(url, (c) => rows(c, 'SELECT count(*)::int AS n FROM history'))).toEqual([{ n: txs }]);
  });
});

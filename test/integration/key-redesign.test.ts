import type { Client } from 'pg';
import { ChangeApplier, type ApplyTable, type Change } from '../../activities/apply/apply';
import { createSchemaStatements, postLoadInOrder, postLoadStatements } from '../../activities/target/ddl';
import { orphansQuery, wrongLinksQuery } from '../../activities/target/reference-ddl';
import { pgPosition as pos } from '../../activities/postgres/position';
import { redesignKeys } from '../../plan/key-redesign';
import { sourceColumns, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { schemaModel, tableModel } from '../support/models';

/**
 * Key redesign on a real target, with hostile names: the DDL the model renders, the set-based
 * backfill, and the triggers that keep new references right while the applier (under
 * session_replication_role = replica, as CDC runs) inserts children before their parents,
 * moves children, renames and deletes parents. The queries validation runs must say
 * "different" for one wrong link.
 */
const SCHEMA = 'Shöp "x"';
const PARENT = 'Order s';
const CHILD = 'it"ems';

const source: SchemaModel = schemaModel([
    tableModel(SCHEMA, PARENT, [['Cust', 'integer'], ['no', 'text'], ['total', 'numeric(10,2)']], ['Cust', 'no']),
    tableModel(SCHEMA, CHILD, [['line', 'integer'], ['Cust', 'integer'], ['no', 'text'], ['qty', 'integer']], ['line']),
]);

const redesigned = redesignKeys(source, [
  { table: `"${SCHEMA.replace(/"/g, '""')}"."${PARENT}"`, surrogateKey: { column: 'select', type: 'bigint' } },
  { table: `"${SCHEMA.replace(/"/g, '""')}"."${CHILD.replace(/"/g, '""')}"`, references: [{ column: 'Order Id', parent: `"${SCHEMA.replace(/"/g, '""')}"."${PARENT}"`, on: { Cust: 'Cust', no: 'no' } }] },
]);
if (!redesigned.ok) throw new Error(JSON.stringify(redesigned.issues));
const model = redesigned.model;
const parentModel = model.tables[0]!;
const childModel = model.tables[1]!;
const ref = childModel.references![0]!;
const P = qualifiedTable(SCHEMA, PARENT);
const C = qualifiedTable(SCHEMA, CHILD);

describe('key redesign on the target', () => {
  const db = uniqueName('key_redesign');
  let url: string;

  beforeAll(async () => {
    url = await createDatabase('target', db);
    await withClient(url, async (c) => {
      for (const sql of createSchemaStatements(model)) await c.query(sql);
      // The load: the source's columns only, as COPY writes them.
      const cols = (t: TableModel) => sourceColumns(t).map((x) => quoteIdent(x.name)).join(', ');
      await c.query(`INSERT INTO ${P} (${cols(parentModel)}) VALUES (1, 'a', 1), (1, 'b', 2), (2, 'a', 3)`);
      await c.query(`INSERT INTO ${C} (${cols(childModel)}) VALUES (1, 1, 'a', 1), (2, 1, 'a', 1), (3, 1, 'b', 1), (4, 9, 'zz', 1), (5, NULL, NULL, 1)`);
      for (const s of postLoadInOrder(postLoadStatements(model))) await c.query(s.sql);
    });
  });

  afterAll(async () => {
    await dropDatabase('target', db);
  });

  const links = (c: Client) =>
    c
      .query(`SELECT ch.line, ch."Cust", ch.no, p."select" IS NOT DISTINCT FROM ch."Order Id" AS right_parent, ch."Order Id" IS NOT NULL AS linked
                FROM ${C} ch LEFT JOIN ${P} p ON p."Cust" = ch."Cust" AND p.no = ch.no ORDER BY ch.line`)
      .then((r) => r.rows.map((x) => `${x.line}:${x.Cust ?? '-'}/${x.no ?? '-'}:${x.right_parent ? 'right' : 'WRONG'}${x.linked ? '' : ':null'}`));
  const count = async (c: Client, sql: string) => Number((await c.query(sql)).rows[0].n);

  it('fills the new reference set-based after the load, keys the parent by its surrogate, and counts the orphan', async () => {
    await withClient(url, async (c) => {
      expect(await links(c)).toEqual(['1:1/a:right', '2:1/a:right', '3:1/b:right', '4:9/zz:right:null', '5:-/-:right:null']);
      const keys = await c.query(`SELECT pg_get_constraintdef(k.oid) AS d FROM pg_constraint k WHERE k.conrelid IN ('${P.replace(/'/g, "''")}'::regclass, '${C.replace(/'/g, "''")}'::regclass) ORDER BY 1`);
      expect(keys.rows.map((r) => r.d).sort()).toEqual(
        [`FOREIGN KEY ("Order Id") REFERENCES ${P}("select") ON DELETE SET NULL`, 'PRIMARY KEY (line)', 'PRIMARY KEY ("select")', 'UNIQUE ("Cust", no)'].sort(),
      );
      expect((await c.query(orphansQuery(childModel, ref, 5))).rows[0]).toEqual({ n: '1', examples: ['(9,zz)'] });
      expect(await count(c, wrongLinksQuery(childModel, ref))).toBe(0);
    });
  });

  it('keeps references right while CDC applies children before parents, moves, renames and deletes', async () => {
    const text = (v: string | null) => (v === null ? null : Buffer.from(v));
    const parent: ApplyTable = { key: `${SCHEMA}.${PARENT}`, schema: SCHEMA, name: PARENT, columns: ['Cust', 'no', 'total'], keyColumns: [0, 1], carried: ['select'] };
    const child: ApplyTable = { key: `${SCHEMA}.${CHILD}`, schema: SCHEMA, name: CHILD, columns: ['line', 'Cust', 'no', 'qty'], keyColumns: [0], carried: ['Order Id'] };
    let lsn = 0x2_0000_0000n;
    const at = () => pos(`${(lsn >> 32n).toString(16)}/${(lsn++ & 0xffffffffn).toString(16)}`);
    const row = (...v: (string | null)[]) => v.map(text);
    const changes: Change[] = [
      // A child before its parent in one source transaction, then the parent.
      { kind: 'insert', table: child, position: at(), new: row('10', '3', 'new', '1') },
      { kind: 'insert', table: parent, position: at(), new: row('3', 'new', '5') },
      // A child moved to another parent (an update of its natural key).
      { kind: 'update', table: child, position: at(), new: row('2', '1', 'b', '7') },
      // A parent's natural key changes (a key change: delete + insert): its surrogate key stays,
      // the children that named the old key lose their link, those naming the new one gain it.
      { kind: 'insert', table: child, position: at(), new: row('11', '2', 'a2', '1') },
      { kind: 'update', table: parent, position: at(), old: row('2', 'a', null), new: row('2', 'a2', '3') },
      // The orphan's parent arrives.
      { kind: 'insert', table: parent, position: at(), new: row('9', 'zz', '1') },
      // A parent deleted; its child stays (no relationship on the source): unlinked.
      { kind: 'delete', table: parent, position: at(), old: row('1', 'a', null) },
      // A replayed insert of an existing parent: its surrogate key does not change.
      { kind: 'insert', table: parent, position: at(), new: row('1', 'b', '2') },
    ];
    await withClient(url, async (c) => {
      const idsBefore = (await c.query(`SELECT "Cust" || '/' || no AS k, "select" AS id FROM ${P} ORDER BY 1`)).rows;
      await c.query('SET session_replication_role = replica');
      const applier = new ChangeApplier(c, {});
      await c.query('BEGIN');
      for (const ch of changes) await applier.add(ch);
      await applier.flush();
      await c.query('COMMIT');
      expect(await links(c)).toEqual(['1:1/a:right:null', '2:1/b:right', '3:1/b:right', '4:9/zz:right', '5:-/-:right:null', '10:3/new:right', '11:2/a2:right']);
      const ids = new Map((await c.query(`SELECT "Cust" || '/' || no AS k, "select" AS id FROM ${P}`)).rows.map((r) => [r.k, r.id]));
      const before = new Map(idsBefore.map((r) => [r.k, r.id]));
      expect(ids.get('1/b')).toBe(before.get('1/b'));
      expect(ids.get('2/a2')).toBe(before.get('2/a'));
      expect(await count(c, wrongLinksQuery(childModel, ref))).toBe(0);
      expect(await count(c, orphansQuery(childModel, ref, 0))).toBe(1);
      await c.query(`ALTER TABLE ${C} VALIDATE CONSTRAINT ${quoteIdent(ref.name)}`);
    });
  });

  it('validation says different when one reference points at the wrong parent', async () => {
    await withClient(url, async (c) => {
      // The child's trigger recomputes a link only when its natural key changes or it has none.
      await c.query(`UPDATE ${C} SET "Order Id" = (SELECT "select" FROM ${P} WHERE no = 'new') WHERE line = 3`);
      expect(await count(c, wrongLinksQuery(childModel, ref))).toBe(1);
      // A link to a parent that is gone (possible while CDC applies as a replica: no foreign key
      // check), on a row whose natural key names no parent either.
      await c.query('SET session_replication_role = replica');
      await c.query(`UPDATE ${C} SET "Order Id" = 999999 WHERE line = 5`);
      expect(await count(c, wrongLinksQuery(childModel, ref))).toBe(2);
    });
  });
});

import { computedMismatchQuery } from '../../activities/native/validate';
import { createSchemaStatements } from '../../activities/target/ddl';
import { parsePlan } from '../../plan/parse-plan';
import type { SchemaModel } from '../../plan/schema-model';
import { targetModel } from '../../plan/target-model';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

/**
 * A DMS add-column expression on a real target: the trigger computes it for rows written as
 * COPY and the applier write them (only the source's columns, under
 * session_replication_role = replica), with hostile names; the check validation runs counts a
 * row whose value was changed behind the trigger's back.
 */
describe('a column added by a mapping expression', () => {
  const db = uniqueName('map_computed');
  let url: string;
  const source: SchemaModel = {
    schemas: ['S "q"'],
    extensions: [],
    types: [],
    sequences: [],
    tables: [
      {
        schema: 'S "q"',
        name: 'Tbl x',
        columns: [
          { name: 'Id', type: 'integer', notNull: true, binaryCopySafe: true },
          { name: 'first_name', type: 'text', notNull: false, binaryCopySafe: true },
          { name: 'n', type: 'integer', notNull: false, binaryCopySafe: true },
        ],
        primaryKey: { name: 'pk', definition: 'PRIMARY KEY ("Id")', columns: ['Id'] },
        uniques: [],
        checks: [],
        exclusions: [],
        foreignKeys: [],
        indexes: [],
        estimatedRows: '0',
        estimatedBytes: '0',
      },
    ],
  };
  const parsed = parsePlan({
    name: 'm',
    source: { engine: 'postgres', url: 'env:S' },
    target: { engine: 'postgres', url: 'env:T' },
    tables: {
      mappings: {
        rules: [
          { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': '1', 'object-locator': { 'schema-name': '%', 'table-name': '%' }, 'rule-action': 'include' },
          {
            'rule-type': 'transformation',
            'rule-id': '2',
            'rule-name': '2',
            'rule-target': 'column',
            'object-locator': { 'schema-name': 'S "q"', 'table-name': 'Tbl x' },
            'rule-action': 'add-column',
            value: 'label',
            expression: "CASE WHEN $n > 10 THEN upper($first_name) || '!' ELSE ifnull($first_name, 'none') END",
            'data-type': { type: 'string', length: 50 },
          },
        ],
      },
    },
  });
  beforeAll(async () => {
    url = await createDatabase('target', db);
  });
  afterAll(async () => {
    await dropDatabase('target', db);
  });

  it('is computed on write, by the load and by the applier, and a wrong value is counted', async () => {
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const r = targetModel(source, parsed.plan);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const t = r.model.tables[0]!;
    const col = t.columns.find((c) => c.name === 'label')!;
    if (col.added?.kind !== 'expression') throw new Error('label is not computed');
    const sql = col.added.sql;
    await withClient(url, async (c) => {
      for (const sql of createSchemaStatements(r.model)) await c.query(sql);
      await c.query(`INSERT INTO "S ""q"""."Tbl x" ("Id", first_name, n) VALUES (1, 'ann', 5), (2, 'bob', 50), (3, NULL, 1)`);
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO "S ""q"""."Tbl x" ("Id", first_name, n) VALUES (4, 'cy', 11)`);
      await c.query(`UPDATE "S ""q"""."Tbl x" SET n = 20 WHERE "Id" = 1`);
      const rows = await c.query(`SELECT "Id", label FROM "S ""q"""."Tbl x" ORDER BY "Id"`);
      expect(rows.rows).toEqual([
        { Id: 1, label: 'ANN!' },
        { Id: 2, label: 'BOB!' },
        { Id: 3, label: 'none' },
        { Id: 4, label: 'CY!' },
      ]);
      expect((await c.query(computedMismatchQuery(t, 'label', sql))).rows[0].n).toBe('0');
      await c.query(`ALTER TABLE "S ""q"""."Tbl x" DISABLE TRIGGER ALL`);
      await c.query(`UPDATE "S ""q"""."Tbl x" SET label = 'tampered' WHERE "Id" = 3`);
      expect((await c.query(computedMismatchQuery(t, 'label', sql))).rows[0].n).toBe('1');
    });
  });
});

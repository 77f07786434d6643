import { Client } from 'pg';
import { defaultDeps } from '../../activities';
import { RelationTracker } from '../../activities/apply/relations';
import type { ChangeEvent, SourceEngine, SourceRelation } from '../../activities/engine';
import { createSchemaStatements } from '../../activities/target/ddl';
import { parsePlan, qualifiedKey, type SchemaModel, type TableModel } from '../../plan';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { oneByOne } from '../support/batches';

/**
 * Fault of issue 18 (3): a DROP COLUMN or RENAME COLUMN on the source during CDC, on a table
 * that had no change since the applier started, must pause with SchemaChanged (it was applied
 * silently: the target kept the dropped column with stale values, or grew the new name while
 * the old one went stale). Real pgoutput from a real slot, the applier's relation tracker on a
 * real target. And a DDL that no change followed is named a schema change at validation.
 */
describe('fault: a column dropped or renamed on the source during CDC pauses with SchemaChanged', () => {
  const db = uniqueName('faults_ddl');
  const targetDb = uniqueName('faults_ddl_t');
  const name = uniqueName('faults-ddl').replace(/_/g, '-');
  const migration = { name, runId: 'faults-ddl' };
  let sourceUrl: string;
  let targetUrl: string;
  let engine: SourceEngine;
  let model: SchemaModel;
  let start: string;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createDatabase('source', db), createDatabase('target', targetDb)]);
    await withClient(sourceUrl, (c) =>
      c.query(`
        CREATE TABLE dropped (id int PRIMARY KEY, a text, b text);
        CREATE TABLE renamed (id int PRIMARY KEY, a text);
        CREATE TABLE widened (id int PRIMARY KEY, a text);
        INSERT INTO dropped SELECT g, 'a' || g, 'b' || g FROM generate_series(1, 10) g;
        INSERT INTO renamed SELECT g, 'a' || g FROM generate_series(1, 10) g;
        INSERT INTO widened SELECT g, 'a' || g FROM generate_series(1, 10) g;`),
    );
    process.env.FAULTS_DDL_SRC = sourceUrl;
    process.env.FAULTS_DDL_TGT = targetUrl;
    const parsed = parsePlan({ name, mode: 'cdc', source: { engine: 'postgres', url: 'env:FAULTS_DDL_SRC' }, target: { engine: 'postgres', url: 'env:FAULTS_DDL_TGT' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    engine = await defaultDeps.engines.postgres!(parsed.plan);
    model = await engine.introspect();
    await withClient(targetUrl, async (c) => {
      for (const sql of createSchemaStatements(model)) await c.query(sql);
      for (const t of model.tables) await c.query(`ALTER TABLE "${t.name}" ADD PRIMARY KEY (id)`);
    });
    start = (await engine.cdc.prepare({ model, migration, afterLoad: false })).start;
    // The DDL, then a write to each table: the first relation message the applier sees for it.
    await withClient(sourceUrl, (c) =>
      c.query(`
        ALTER TABLE dropped DROP COLUMN b;   INSERT INTO dropped VALUES (100, 'new');
        ALTER TABLE renamed RENAME a TO c;   INSERT INTO renamed VALUES (100, 'new');
        ALTER TABLE widened ADD COLUMN z text; INSERT INTO widened VALUES (100, 'new', 'zz');`),
    );
  });

  afterAll(async () => {
    await engine?.cdc.cleanup(migration).catch(() => undefined);
    await Promise.all([dropDatabase('source', db), dropDatabase('target', targetDb)]);
  });

  /** The first relation event of each table, from the slot. */
  async function relations(): Promise<Map<string, SourceRelation>> {
    const out = new Map<string, SourceRelation>();
    const stream = await engine.cdc.open(start, model);
    try {
      for await (const e of oneByOne(stream)) {
        if (e.kind === 'relation' && !out.has(e.relation.name)) out.set(e.relation.name, e.relation);
        if (out.size === 3) break;
      }
    } finally {
      await stream.close();
    }
    return out;
  }

  test('dropped and renamed columns are refused naming the table and the column; an added nullable column is applied', async () => {
    const rel = await relations();
    const target = new Client({ connectionString: targetUrl });
    await target.connect();
    try {
      const tracker = new RelationTracker(target, new Map(model.tables.map((t: TableModel) => [qualifiedKey(t), t])));
      await expect(tracker.learn(rel.get('dropped')!, async () => undefined)).rejects.toMatchObject({
        type: 'SchemaChanged',
        message: expect.stringMatching(/public\.dropped.*column b .*dropped or renamed/),
      });
      await expect(tracker.learn(rel.get('renamed')!, async () => undefined)).rejects.toMatchObject({
        type: 'SchemaChanged',
        message: expect.stringMatching(/public\.renamed.*column a .*dropped or renamed/),
      });
      // The DDL policy's one automatic case still works: a nullable column without a default.
      await expect(tracker.learn(rel.get('widened')!, async () => undefined)).resolves.toEqual(['z']);
      const cols = await target.query(`SELECT attname FROM pg_attribute WHERE attrelid = 'public.widened'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
      expect(cols.rows.map((r) => r.attname)).toEqual(['id', 'a', 'z']);
    } finally {
      await target.end();
    }
  });

  test('a DDL that no change followed is named a schema change when validation reads the source', async () => {
    const reader = await engine.openReader();
    try {
      const dropped = model.tables.find((t) => t.name === 'dropped')!;
      await expect(reader.checksum(dropped, { kind: 'whole' }, true)).rejects.toMatchObject({
        type: 'SchemaChanged',
        message: expect.stringContaining('public.dropped'),
      });
    } finally {
      await reader.close();
    }
  });
});

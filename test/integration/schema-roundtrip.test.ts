/**
 * Introspect a hostile source schema, recreate it on a fresh target from the model, move the rows
 * with COPY, build keys and indexes, carry sequences, and check that the target reads back as
 * the same model with the same data.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { createSchemaStatements, indexIfNotExists, postLoadInOrder, postLoadStatements, sequenceSetvalStatement } from '../../activities/target/ddl';
import { qualifiedTable, quoteIdent, quoteLiteral } from '../../plan/sql-names';
import { introspectPostgres, type IntrospectedSchema } from '../../activities/postgres/introspect';
import { sourceColumns, type SchemaModel, type SequenceModel, type TableModel } from '../../plan/schema-model';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

const select = (_schema: string, table: string) => table !== 'unselected';

/** The model without what legitimately differs between two servers holding the same schema. */
function comparable(m: SchemaModel): unknown {
  const { warnings: _w, ...rest } = m as IntrospectedSchema;
  return {
    ...rest,
    tables: rest.tables.map(({ estimatedRows: _r, estimatedBytes: _b, ...t }) => t),
  };
}

async function copyTable(source: Client, target: Client, t: TableModel): Promise<void> {
  const cols = sourceColumns(t);
  const list = cols.map((c) => quoteIdent(c.name)).join(', ');
  const table = qualifiedTable(t.schema, t.name);
  const format = cols.every((c) => c.binaryCopySafe) ? 'binary' : 'text';
  await pipeline(
    source.query(copyTo(`COPY (SELECT ${list} FROM ONLY ${table}) TO STDOUT WITH (FORMAT ${format})`)),
    target.query(copyFrom(`COPY ${table} (${list}) FROM STDIN WITH (FORMAT ${format})`)),
  );
}

async function fingerprint(c: Client, t: TableModel): Promise<{ n: string; sum: string }> {
  const { rows } = await c.query<{ n: string; sum: string }>(
    `SELECT count(*)::text AS n,
            coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text AS sum
       FROM ${qualifiedTable(t.schema, t.name)} t`,
  );
  return rows[0];
}

async function nextval(c: Client, s: SequenceModel): Promise<string> {
  const { rows } = await c.query<{ v: string }>(`SELECT pg_catalog.nextval($1::regclass)::text AS v`, [
    qualifiedTable(s.schema, s.name),
  ]);
  return rows[0].v;
}

describe('ddl rendering', () => {
  test('IF NOT EXISTS goes after the leading keywords only', () => {
    expect(indexIfNotExists('CREATE INDEX "INDEX on ""x""" ON public.t USING btree (a)')).toBe(
      'CREATE INDEX IF NOT EXISTS "INDEX on ""x""" ON public.t USING btree (a)',
    );
    expect(indexIfNotExists('CREATE UNIQUE INDEX "CREATE INDEX x" ON "s"."INDEX" USING btree ("INDEX")')).toBe(
      'CREATE UNIQUE INDEX IF NOT EXISTS "CREATE INDEX x" ON "s"."INDEX" USING btree ("INDEX")',
    );
    expect(indexIfNotExists('CREATE INDEX IF NOT EXISTS i ON t USING btree (a)')).toBe(
      'CREATE INDEX IF NOT EXISTS i ON t USING btree (a)',
    );
  });

  test('literals and setval', () => {
    expect(quoteLiteral(`it's`)).toBe(`'it''s'`);
    expect(quoteLiteral(`a\\b'`)).toBe(`E'a\\\\b'''`);
    const seq: SequenceModel = {
      schema: 'We "ird',
      name: "s'q",
      dataType: 'bigint',
      start: '1',
      increment: '1',
      min: '1',
      max: '9223372036854775807',
      cache: '1',
      cycle: false,
      lastValue: '9007199254740993',
      isCalled: true,
      identity: false,
    };
    expect(sequenceSetvalStatement(seq)).toBe(`SELECT pg_catalog.setval('"We ""ird"."s''q"', 9007199254740993, true)`);
    expect(sequenceSetvalStatement({ ...seq, lastValue: null })).toBeUndefined();
  });
});

describe('PostgreSQL schema round trip', () => {
  const sourceDb = uniqueName('rt_src');
  const targetDb = uniqueName('rt_tgt');
  let sourceUrl: string;
  let source: Client;
  let target: Client;

  async function connect(url: string): Promise<Client> {
    const c = new Client({ connectionString: url });
    await c.connect();
    return c;
  }

  beforeAll(async () => {
    sourceUrl = await createDatabase('source', sourceDb);
    source = await connect(sourceUrl);
    target = await connect(await createDatabase('target', targetDb));
    await source.query(readFileSync(join(__dirname, '..', 'fixtures', 'hostile-schema.sql'), 'utf8'));
  });

  afterAll(async () => {
    await source?.end().catch(() => undefined);
    await target?.end().catch(() => undefined);
    await dropDatabase('source', sourceDb).catch(() => undefined);
    await dropDatabase('target', targetDb).catch(() => undefined);
  });

  test('introspect → create → copy → keys → sequences reproduces schema and data', async () => {
    await source.query(`SET search_path = "$user", public`);
    const model = await introspectPostgres(source, select);
    // Introspection must not leave its pg_catalog-only search_path behind.
    expect((await source.query<{ search_path: string }>('SHOW search_path')).rows[0].search_path).toBe('"$user", public');

    expect(model.tables.map((t) => `${t.schema}.${t.name}`)).toEqual([
      'Weird "Schema".Order Items',
      'Weird "Schema".dot.ted',
      'Weird "Schema".select',
      'public.MixedCase',
      'public.refs_unselected',
      'Ünï Schema.ünïcødé_täble',
    ]);
    expect(model.schemas).toEqual(['Weird "Schema"', 'public', 'Ünï Schema']);
    expect(model.extensions).toEqual([
      { name: 'btree_gist', schema: 'public' },
      { name: 'citext', schema: 'public' },
    ]);
    expect(model.warnings).toEqual([
      'foreign key "refs_unselected_u_fkey" of "public"."refs_unselected" references "public"."unselected", which is not migrated: skipped',
    ]);
    // Each type after the types it is built from.
    expect(model.types.map((t) => `${t.kind} ${t.schema}.${t.name}`)).toEqual([
      'domain Weird "Schema".Positive Int',
      'domain Ünï Schema.small positive',
      "enum Weird \"Schema\".Mood 'q'",
      'domain Weird "Schema".moods',
      'enum Weird "Schema".enum',
      'domain Weird "Schema".code',
      'composite Weird "Schema".Point 3D',
      'composite public.Nested',
    ]);

    const items = model.tables.find((t) => t.name === 'Order Items')!;
    const col = (t: TableModel, name: string) => t.columns.find((c) => c.name === name)!;
    expect(col(items, 'Order ID')).toMatchObject({
      identity: 'always',
      identitySequence: { schema: 'Weird "Schema"', name: 'Order Items_Order ID_seq' },
      notNull: true,
      binaryCopySafe: true,
    });
    expect(col(items, 'Order ID').default).toBeUndefined();
    expect(col(items, 'Total').generated).toBe(`(price * ("Qty")::numeric)`);
    expect(col(items, 'select')).toMatchObject({ collation: 'pg_catalog."C"', default: `'it''s'::text` });
    expect(col(items, 'moods')).toMatchObject({ type: `"Weird ""Schema"""."Mood 'q'"[]`, binaryCopySafe: false });
    expect(col(items, 'mood domain').binaryCopySafe).toBe(false);
    expect(col(items, 'Qty')).toMatchObject({ type: '"Weird ""Schema"""."Positive Int"', binaryCopySafe: true });
    expect(col(items, 'price').type).toBe('numeric(30,10)');
    expect(col(items, 'shared').default).toBe(`nextval('"Weird ""Schema"""."shared seq"'::regclass)`);
    expect(items.primaryKey).toEqual({ name: 'Order Items_pkey', definition: 'PRIMARY KEY ("Order ID", "line #")', columns: ['Order ID', 'line #'] });
    const mixed = model.tables.find((t) => t.name === 'MixedCase')!;
    expect(col(mixed, 'cis')).toMatchObject({ type: 'public.citext[]', binaryCopySafe: false });
    expect(col(mixed, 'ints').binaryCopySafe).toBe(true);
    expect(mixed.indexes.map((i) => i.name)).toEqual(['INDEX on "x"', 'MixedCase_jsonbCol_idx', 'partial idx', 'uniq u']);
    expect(mixed.exclusions.map((x) => x.name)).toEqual(['no overlap']);
    const unicode = model.tables.find((t) => t.name === 'ünïcødé_täble')!;
    expect(col(unicode, '値').binaryCopySafe).toBe(false);
    expect(unicode.foreignKeys).toEqual([
      { name: 'fk→select', definition: 'FOREIGN KEY (sel) REFERENCES "Weird ""Schema"""."select"(id) NOT VALID', references: { schema: 'Weird "Schema"', name: 'select' } },
    ]);
    expect(model.sequences.map((s) => `${s.schema}.${s.name} ${s.identity} ${s.lastValue} ${s.isCalled}`)).toEqual([
      // START 1000 INCREMENT 3, five rows.
      'Weird "Schema".Order Items_Order ID_seq true 1012 true',
      'Weird "Schema".dot.ted_small id_seq false 3 true',
      'Weird "Schema".never used false null false',
      'Weird "Schema".restarted false 500 false',
      'Weird "Schema".select_id_seq true 5 true',
      // Nine calls, but CACHE 5 had the relation hand out two blocks of five: 3 + 7 * 9.
      'Weird "Schema".shared seq false 66 true',
      'public.MixedCase_ID_seq false 3 true',
      'Ünï Schema.other schema seq false 6 true',
    ]);

    // Schema first, without keys or indexes.
    for (const sql of createSchemaStatements(model)) await target.query(sql);
    // COPY never touches sequences, so their state after the load is only what setval sets.
    for (const t of model.tables) await copyTable(source, target, t);
    const post = postLoadStatements(model);
    // A foreign key the source has not validated may be violated by its rows: it stays unvalidated.
    expect(post.validateForeignKeys.map((s) => s.name)).not.toContain('fk→select');
    for (const s of postLoadInOrder(post)) await target.query(s.sql);
    // Re-running the index phase must be harmless (a retried activity does that).
    for (const s of post.indexes) await target.query(s.sql);
    for (const s of model.sequences) {
      const sql = sequenceSetvalStatement(s);
      if (sql) await target.query(sql);
    }

    const again = await introspectPostgres(target, select);
    expect(comparable(again)).toEqual(comparable(model));

    for (const t of model.tables) {
      const [a, b] = await Promise.all([fingerprint(source, t), fingerprint(target, t)]);
      expect({ table: t.name, ...b }).toEqual({ table: t.name, ...a });
    }
    expect(Number((await fingerprint(source, items)).n)).toBe(5);

    // A fresh session: the one that ran the fixture still holds cached values of "shared seq".
    await withClient(sourceUrl, async (fresh) => {
      for (const s of model.sequences) {
        expect({ seq: s.name, next: await nextval(target, s) }).toEqual({ seq: s.name, next: await nextval(fresh, s) });
      }
    });
  });

  test('partitioned tables come out partitioned, their partitions attached with their bounds and their indexes', async () => {
    const db = uniqueName('rt_part');
    const targetPart = uniqueName('rt_part_t');
    try {
      const url = await createDatabase('source', db);
      const targetUrl = await createDatabase('target', targetPart);
      const model = await withClient(url, async (c) => {
        await c.query(`
          CREATE TABLE "P a r t" (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
          CREATE TABLE "P 2024" PARTITION OF "P a r t" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
          CREATE TABLE "P rest" PARTITION OF "P a r t" DEFAULT;
          CREATE INDEX "by at" ON "P a r t" (at);
          CREATE TABLE child (id int, at date, FOREIGN KEY (id, at) REFERENCES "P a r t");`);
        return introspectPostgres(c, () => true);
      });
      expect(model.tables.map((t) => t.name)).toEqual(['P 2024', 'P a r t', 'P rest', 'child']);
      expect(model.warnings).toEqual([]);
      expect(model.tables.find((t) => t.name === 'P 2024')!.partitionOf).toEqual({
        parent: { schema: 'public', name: 'P a r t' },
        bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
      });
      // The foreign key is repeated in the catalog for each partition it references; once is enough.
      expect(model.tables.find((t) => t.name === 'child')!.foreignKeys).toHaveLength(1);
      await withClient(targetUrl, async (c) => {
        for (const sql of createSchemaStatements(model)) await c.query(sql);
        for (const s of postLoadInOrder(postLoadStatements(model))) await c.query(s.sql);
        const parts = await c.query(
          `SELECT c.relname AS name, c.relkind::text AS kind, pg_get_expr(c.relpartbound, c.oid) AS bound,
                  (SELECT count(*)::int FROM pg_inherits i WHERE i.inhparent = c.oid) AS children
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'I') ORDER BY c.relname COLLATE "C"`,
        );
        expect(parts.rows).toEqual([
          { name: 'P 2024', kind: 'r', bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", children: 0 },
          { name: 'P a r t', kind: 'p', bound: null, children: 2 },
          // The partitioned key and index, each with its partitions' attached.
          { name: 'P a r t_pkey', kind: 'I', bound: null, children: 2 },
          { name: 'P rest', kind: 'r', bound: 'DEFAULT', children: 0 },
          { name: 'by at', kind: 'I', bound: null, children: 2 },
          { name: 'child', kind: 'r', bound: null, children: 0 },
        ]);
      });
    } finally {
      await dropDatabase('source', db).catch(() => undefined);
      await dropDatabase('target', targetPart).catch(() => undefined);
    }
  });

  test("inside the caller's transaction: its snapshot, its search_path, and it stays usable", async () => {
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    try {
      await source.query(`SET LOCAL search_path = "Weird ""Schema""", public`);
      await source.query('CREATE TABLE public.only_in_this_tx (x int)');
      const m = await introspectPostgres(source, (s) => s === 'public');
      expect(m.tables.map((t) => t.name)).toEqual(['MixedCase', 'only_in_this_tx', 'refs_unselected', 'unselected']);
      expect(m.schemas).toEqual(['public']);
      expect((await source.query<{ sp: string }>(`SELECT current_setting('search_path') AS sp`)).rows[0].sp).toBe(
        '"Weird ""Schema""", public',
      );
      // A failure half-way must not leave the caller's transaction aborted.
      await expect(
        introspectPostgres(source, () => {
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      await source.query('SELECT pg_catalog.count(*) FROM "select"');
    } finally {
      await source.query('ROLLBACK');
    }
    expect((await source.query<{ search_path: string }>('SHOW search_path')).rows[0].search_path).toBe('"$user", public');
  });
});

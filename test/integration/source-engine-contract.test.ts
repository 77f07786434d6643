import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { ChangeEvent, SourceEngine, SourceEngineName } from '../../activities/engine';
import { defaultDeps } from '../../activities';
import { checksumQuery } from '../../activities/pg/checksum';
import { createSchemaStatements } from '../../activities/target/ddl';
import { parsePlan, qualifiedKey, type Plan, type SchemaModel, type TableModel } from '../../plan';
import { qualifiedTable } from '../../plan/sql-names';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { oneByOne } from '../support/batches';

/**
 * One contract, every source engine (kysely-style: one suite looped over the backends): what
 * the runner and the CDC loop rely on from an engine, against real servers. A new engine adds
 * itself to ENGINES with a way to make a source database with the same rows and to write to it.
 */
interface EngineFixture {
  name: SourceEngineName;
  /** Creates a source database holding the fixture tables; returns its URL. */
  createSource(db: string): Promise<string>;
  /** Runs statements on the source, each list in one transaction. */
  write(url: string, transactions: string[][]): Promise<void>;
}

const POSTGRES: EngineFixture = {
  name: 'postgres',
  async createSource(db) {
    const url = await createDatabase('source', db);
    await withClient(url, (c) =>
      c.query(`
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE "Sales Dept"."Order ""Items""" (id bigint PRIMARY KEY, "select" text, amount numeric(12,2), at timestamptz, "naïve" jsonb);
        CREATE TABLE public.plain (k text PRIMARY KEY, v int);
        INSERT INTO "Sales Dept"."Order ""Items""" SELECT g, 'row ' || g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g)
          FROM generate_series(1, 2000) g;
        INSERT INTO public.plain SELECT 'k' || g, g FROM generate_series(1, 300) g;`),
    );
    return url;
  },
  async write(url, transactions) {
    await withClient(url, async (c) => {
      for (const statements of transactions) {
        await c.query('BEGIN');
        for (const s of statements) await c.query(s);
        await c.query('COMMIT');
      }
    });
  },
};

const ENGINES: EngineFixture[] = [POSTGRES];
const ITEMS = '"Sales Dept"."Order ""Items"""';

function planFor(engine: SourceEngineName, name: string, mode: Plan['mode'], env: string): Plan {
  const parsed = parsePlan({ name, mode, source: { engine, url: `env:${env}` }, target: { engine: 'postgres', url: `env:${env}_TARGET` } });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.plan;
}

describe.each(ENGINES)('source engine contract: $name', (fixture) => {
  const db = uniqueName(`contract_${fixture.name}`);
  const targetDb = uniqueName(`contract_${fixture.name}_t`);
  const env = `DBFERRY_CONTRACT_${fixture.name.toUpperCase()}`;
  let sourceUrl: string;
  let targetUrl: string;
  let engine: SourceEngine;
  let model: SchemaModel;
  const name = uniqueName('contract').replace(/_/g, '-');

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([fixture.createSource(db), createDatabase('target', targetDb)]);
    process.env[env] = sourceUrl;
    process.env[`${env}_TARGET`] = targetUrl;
    engine = await defaultDeps.engines[fixture.name]!(planFor(fixture.name, name, 'full-load-and-cdc', env));
    model = await engine.introspect();
    await withClient(targetUrl, async (c) => {
      for (const sql of createSchemaStatements(model)) await c.query(sql);
    });
  });

  afterAll(async () => {
    await engine?.cdc.cleanup({ name, runId: 'contract' }).catch(() => undefined);
    await Promise.all([dropDatabase('source', db), dropDatabase('target', targetDb)]);
  });

  const table = (key: string): TableModel => model.tables.find((t) => qualifiedKey(t) === key)!;

  test('introspection: hostile names and column types round-trip through the target DDL', async () => {
    expect(model.tables.map(qualifiedKey).sort()).toEqual(['Sales Dept.Order "Items"', 'public.plain']);
    expect(table('Sales Dept.Order "Items"').columns.map((c) => c.name)).toEqual(['id', 'select', 'amount', 'at', 'naïve']);
    // The target, read back as a PostgreSQL source, describes the same tables and columns.
    process.env[`${env}_BACK`] = targetUrl;
    const back = await (await defaultDeps.engines.postgres!(planFor('postgres', name, 'full-load', `${env}_BACK`))).introspect();
    const shape = (m: SchemaModel) => m.tables.map((t) => ({ t: qualifiedKey(t), cols: t.columns.map((c) => [c.name, c.type]) })).sort((a, b) => a.t.localeCompare(b.t));
    expect(shape(back)).toEqual(shape(model));
  });

  test('a read point: rows written after it are not read; copyOut and checksum agree with it', async () => {
    const held = await engine.holdReadPoint({ forCdc: false, tables: model.tables, migration: { name, runId: 'contract' } });
    try {
      await fixture.write(sourceUrl, [[`INSERT INTO ${ITEMS} VALUES (999999, 'late', 1, now(), '{}')`, `UPDATE ${ITEMS} SET "select" = 'changed' WHERE id = 1`]]);
      const reader = await engine.joinReadPoint(held.token);
      try {
        const items = table('Sales Dept.Order "Items"');
        const counted = await reader.checksum(items, { kind: 'whole' }, true);
        expect(counted.rows).toBe('2000');
        // The stream the target ingests, loaded into the target table: same rows, same checksum.
        await withClient(targetUrl, async (c) => {
          await c.query(`TRUNCATE ${qualifiedTable(items.schema, items.name)}`);
          const sink = c.query(copyFrom(`COPY ${qualifiedTable(items.schema, items.name)} FROM STDIN WITH (FORMAT text)`));
          await pipeline(await reader.copyOut(items, { kind: 'whole' }, 'text'), sink);
          const t = (await c.query(checksumQuery(items, true, '', counted.method))).rows[0];
          expect(t).toEqual({ rows: '2000', checksum: counted.checksum });
          // Validation must be able to say "different": one changed value changes the checksum.
          await c.query(`UPDATE ${qualifiedTable(items.schema, items.name)} SET amount = amount + 0.01 WHERE id = 1500`);
          const changed = (await c.query(checksumQuery(items, true, '', counted.method))).rows[0];
          expect(changed.rows).toBe('2000');
          expect(changed.checksum).not.toBe(counted.checksum);
        });
        // A chunk reads only its key range.
        const chunk = await reader.checksum(items, { kind: 'keys', from: ['101'], to: ['201'] }, false);
        expect(chunk.rows).toBe('100');
        let bytes = 0;
        await pipeline(await reader.copyOut(items, { kind: 'keys', from: ['101'], to: ['201'] }, 'text'), new Writable({ write: (b: Buffer, _e, cb) => ((bytes += b.length), cb()) }));
        expect(bytes).toBeGreaterThan(100 * 20);
      } finally {
        await reader.close();
      }
    } finally {
      await held.release();
    }
    // Once released, the read point cannot be joined: loaders move to the next generation.
    await expect(engine.joinReadPoint(held.token)).rejects.toThrow(/has ended/);
  });

  test('a table rewritten after the read point is refused by name, never read as empty', async () => {
    const held = await engine.holdReadPoint({ forCdc: false, tables: model.tables, migration: { name, runId: 'contract' } });
    try {
      await fixture.write(sourceUrl, [['ALTER TABLE public.plain ALTER COLUMN v TYPE bigint']]);
      const reader = await engine.joinReadPoint(held.token);
      try {
        await expect(reader.copyOut(table('public.plain'), { kind: 'whole' }, 'text')).rejects.toMatchObject({
          type: 'SchemaChanged',
          message: expect.stringContaining('public.plain was rewritten after the load snapshot'),
        });
      } finally {
        await reader.close();
      }
    } finally {
      await held.release();
    }
  });

  test('the change stream: ordered positions, transaction boundaries, resumable from a position', async () => {
    const migration = { name, runId: 'contract' };
    const prepared = await engine.cdc.prepare({ model, migration, afterLoad: false });
    expect(prepared.resources.length).toBeGreaterThan(0);
    expect(engine.cdc.compare(prepared.appliedThrough, prepared.start)).toBeLessThan(0);
    await fixture.write(sourceUrl, [
      [`INSERT INTO public.plain VALUES ('new1', 1)`],
      [`UPDATE public.plain SET v = v + 1 WHERE k = 'k1'`, `DELETE FROM public.plain WHERE k = 'k2'`],
      [`INSERT INTO public.plain VALUES ('new2', 2)`],
    ]);
    const marker = await engine.cdc.writeMarker(`contract ${name}`);

    const collect = async (from: string) => {
      const stream = await engine.cdc.open(from, model);
      const events: ChangeEvent[] = [];
      try {
        for await (const e of oneByOne(stream)) {
          events.push(e);
          if (e.kind === 'marker' && e.content === `contract ${name}`) break;
        }
      } finally {
        await stream.close();
      }
      return events;
    };
    const events = await collect(prepared.start);
    const commits = events.filter((e): e is Extract<ChangeEvent, { kind: 'commit' }> => e.kind === 'commit');
    expect(commits.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < commits.length; i++) expect(engine.cdc.compare(commits[i - 1]!.commitPosition, commits[i]!.commitPosition)).toBeLessThan(0);
    const changes = events.filter((e): e is Extract<ChangeEvent, { kind: 'change' }> => e.kind === 'change').map((e) => e.change.kind);
    expect(changes).toEqual(['insert', 'update', 'delete', 'insert']);
    expect(events.some((e) => e.kind === 'relation' && e.relation.name === 'plain')).toBe(true);
    const m = events.find((e) => e.kind === 'marker')!;
    expect(engine.cdc.compare(m.kind === 'marker' ? m.position : '', marker)).toBeLessThanOrEqual(0);

    // Resuming after the first transaction skips it: the next commit is the second one's.
    const again = await collect(commits[0]!.endPosition);
    const firstCommit = again.find((e) => e.kind === 'commit');
    expect(firstCommit).toEqual(commits[1]);
    expect(again.filter((e) => e.kind === 'change').length).toBe(3);
  });
});

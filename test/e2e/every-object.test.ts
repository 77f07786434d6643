import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, schemaDump, tableFingerprint } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(6 * 60_000);

const SCHEMAS = ['app', 'Audit Log'];
/** What an application reads: tables (parents with their partitions and children), views, the materialized view. */
const READS = [
  'app.customer', 'app."Order"', 'app."Order_2025"', 'app."Order_rest"', 'app.note', 'app.urgent_note', '"Audit Log"."Entry"',
  'app.order_totals', 'app.big_spenders', 'app.mood_counts',
];

/**
 * Issue 11 acceptance: a schema with every kind of object (test/fixtures/every-object.sql:
 * extension, enum, domain, collation, text search configuration, functions a default needs and
 * functions that need a table, a procedure, an aggregate, an operator, a cast, triggers, a rule
 * routing into an inheritance child, row-level security and a policy, comments, views on views,
 * a materialized view with an index, partitions, grants) migrates so that `pg_dump
 * --schema-only --no-owner` of its schemas is the same on both sides, and everything an
 * application reads (tables, views, the materialized view) is equal by the test's own fingerprint.
 */
describe('every schema object migrates', () => {
  const sourceDb = uniqueName('objs');
  const name = uniqueName('objs').replace(/_/g, '-');
  const queue = `q-${name}`;
  const src = () => serverUrl('source', sourceDb);
  const tgt = (suffix: string) => serverUrl('target', `${sourceDb}_${suffix}`);
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    // A role present on both sides, for the grants.
    for (const side of ['source', 'target'] as const) {
      await withClient(serverUrl(side), (c) =>
        c.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dbferry_reader') THEN CREATE ROLE dbferry_reader; END IF; END $$`),
      );
    }
    await createDatabase('source', sourceDb);
    await withClient(src(), (c) => c.query(readFileSync(join(__dirname, '..', 'fixtures', 'every-object.sql'), 'utf8')));
    const env: Record<string, string> = { SRC_URL: src() };
    for (const s of ['fl', 'cdc', 'dr']) env[`TGT_${s.toUpperCase()}`] = tgt(s);
    worker = await startWorker(cliEnv(queue, env));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), ...['fl', 'cdc', 'dr'].map((s) => dropDatabase('target', `${sourceDb}_${s}`))]);
  });

  const plan = (suffix: string, mode: string, grants = false) =>
    writePlan(`
name: ${name}-${suffix}
mode: ${mode}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_${suffix.toUpperCase()} }
objects: { grants: ${grants} }
load: { parallel: 2 }
`);

  const expectSameReads = async (target: string) => {
    for (const r of READS) {
      const [a, b] = await Promise.all([tableFingerprint(src(), r), tableFingerprint(target, r)]);
      expect({ read: r, ...b }).toEqual({ read: r, ...a });
    }
  };

  it('check names every object that will not be carried, and why (never a silent drop)', async () => {
    const p = writePlan(`
name: ${name}-check
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_FL }
tables: { exclude: [app.customer] }
`);
    const res = await dbferry(['check', p, '--json'], cliEnv(queue));
    const messages: string[] = JSON.parse(res.stdout).findings.map((f: { message: string }) => f.message);
    for (const needs of ['view app.big_spenders', 'materialized view app.mood_counts', 'function app.customers_in(app.mood)']) {
      expect(messages).toContainEqual(expect.stringContaining(`${needs} is not copied: it needs table app.customer, which the plan does not migrate`));
    }
    for (const whole of ['event trigger ddl_noted', 'publication app_feed']) {
      expect(messages).toContainEqual(expect.stringContaining(`${whole} is not copied (it acts on the whole database)`));
    }
    // What the plan migrates is not named.
    expect(messages.filter((m) => /view app\.order_totals|function app\.touch/.test(m))).toEqual([]);
  });

  it('full-load with grants: the same schema by pg_dump (privileges included), the same reads', async () => {
    const done = await dbferry(['start', plan('fl', 'full-load', true), '--wait', '--json'], cliEnv(queue));
    expect({ code: done.code, failure: JSON.parse(done.stdout || '{}').failure ?? JSON.parse(done.stdout || '{}').status?.failure }).toEqual({ code: 0, failure: undefined });
    expect(await schemaDump(tgt('fl'), SCHEMAS, { privileges: true })).toEqual(await schemaDump(src(), SCHEMAS, { privileges: true }));
    await expectSameReads(tgt('fl'));
  });

  it('dump-restore: the same schema by pg_dump, the same reads, also after a retry over the objects an attempt made', async () => {
    // The first attempt fails after the restore, once views exist on top of the tables.
    await createDatabase('target', `${sourceDb}_dr`);
    await withClient(tgt('dr'), (c) =>
      c.query(`
        CREATE FUNCTION public.refuse_mv() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'not today'; END $f$;
        CREATE EVENT TRIGGER refuse_mv ON ddl_command_start WHEN TAG IN ('CREATE MATERIALIZED VIEW') EXECUTE FUNCTION public.refuse_mv();`),
    );
    const paused = await dbferry(['start', plan('dr', 'dump-restore'), '--wait', '--json'], cliEnv(queue));
    expect({ code: paused.code, step: JSON.parse(paused.stdout).failure?.step }).toEqual({ code: 3, step: 'dump-restore' });
    expect(JSON.parse(paused.stdout).failure.message).toContain('app.mood_counts');
    await withClient(tgt('dr'), (c) => c.query('DROP EVENT TRIGGER refuse_mv; DROP FUNCTION public.refuse_mv()'));
    expect((await dbferry(['retry', `${name}-dr`], cliEnv(queue))).code).toBe(0);
    const done = await dbferry(['start', plan('dr', 'dump-restore'), '--wait', '--json'], cliEnv(queue));
    expect({ code: done.code, failure: JSON.parse(done.stdout || '{}').failure ?? JSON.parse(done.stdout || '{}').status?.failure }).toEqual({ code: 0, failure: undefined });
    expect(await schemaDump(tgt('dr'), SCHEMAS)).toEqual(await schemaDump(src(), SCHEMAS));
    await expectSameReads(tgt('dr'));
  });

  it('full-load-and-cdc: triggers, rules and routing on the source travel as the rows they made; same schema, same reads', async () => {
    const run = await dbferry(['start', plan('cdc', 'full-load-and-cdc')], cliEnv(queue));
    expect(run.code).toBe(0);
    await untilCaughtUp(`${name}-cdc`, cliEnv(queue), worker);
    const c = new Client({ connectionString: src() });
    await c.connect();
    try {
      for (let i = 0; i < 20; i++) {
        await c.query('BEGIN');
        await c.query(`INSERT INTO app.note (id, body, kind) VALUES ($1, 'during cdc', $2)`, [1000 + i, i % 2 ? 'urgent' : 'plain']);
        await c.query(`INSERT INTO app."Order" (customer_id, amount, placed) VALUES ($1, 42, date '2025-05-01')`, [(i % 500) + 1]);
        await c.query(`UPDATE app.customer SET mood = 'happy' WHERE id = $1`, [i + 1]);
        await c.query('COMMIT');
      }
    } finally {
      await c.end();
    }
    await new Promise((r) => setTimeout(r, 1500));
    const cut = await dbferry(['cutover', `${name}-cdc`, '--wait', '--json'], cliEnv(queue));
    expect({ code: cut.code, err: cut.stderr.slice(-2000) }).toEqual({ code: 0, err: expect.any(String) });
    expect(await schemaDump(tgt('cdc'), SCHEMAS)).toEqual(await schemaDump(src(), SCHEMAS));
    // The target's materialized view was refreshed at cutover: the source's, refreshed now, says the same.
    await withClient(src(), (x) => x.query('REFRESH MATERIALIZED VIEW app.mood_counts'));
    await expectSameReads(tgt('cdc'));
    await expectSameTables(src(), tgt('cdc'));
  });
});

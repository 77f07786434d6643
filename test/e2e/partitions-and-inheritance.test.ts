import { Client } from 'pg';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, schemaDump, tableFingerprint } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(6 * 60_000);

/**
 * Issue 11: partitioned tables (range, list, hash, a default partition, a sub-partitioned
 * partition) and inheritance children migrate as the source has them: the same schema by
 * `pg_dump --schema-only`, every table, parent and leaf, equal by the test's own fingerprint
 * read as an application reads it (a parent with its partitions' or children's rows).
 * Validation compares each parent as queried too, and says "different" when a partition is
 * missing from its parent on the target, though every table's own rows are equal.
 */
const FIXTURE = `
  CREATE SCHEMA sales;
  CREATE TABLE sales.customer (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO sales.customer SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;

  CREATE TABLE sales.payment (
    id bigint NOT NULL, customer_id int NOT NULL REFERENCES sales.customer (id), paid_at date NOT NULL,
    region text NOT NULL, amount numeric(10,2) CHECK (amount >= 0), PRIMARY KEY (id, paid_at, region)
  ) PARTITION BY RANGE (paid_at);
  CREATE TABLE sales.payment_2024 PARTITION OF sales.payment FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE sales.payment_2025 PARTITION OF sales.payment FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (region);
  CREATE TABLE sales.payment_2025_eu PARTITION OF sales.payment_2025 FOR VALUES IN ('eu');
  CREATE TABLE sales.payment_2025_other PARTITION OF sales.payment_2025 DEFAULT;
  CREATE TABLE sales.payment_old PARTITION OF sales.payment DEFAULT;
  CREATE INDEX ON sales.payment (customer_id);
  INSERT INTO sales.payment
    SELECT g, g % 1000 + 1, date '2023-06-01' + (g % 900), CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, (g % 500)::numeric / 7
      FROM generate_series(1, 30000) g;

  CREATE TABLE sales.ticket (id int, status text NOT NULL, body text, PRIMARY KEY (id, status)) PARTITION BY LIST (status);
  CREATE TABLE sales.ticket_open PARTITION OF sales.ticket FOR VALUES IN ('open', 'new');
  CREATE TABLE sales.ticket_closed PARTITION OF sales.ticket FOR VALUES IN ('closed');
  INSERT INTO sales.ticket SELECT g, (ARRAY['open', 'new', 'closed'])[g % 3 + 1], 'ticket ' || g FROM generate_series(1, 3000) g;

  CREATE TABLE sales."Session" (id bigint PRIMARY KEY, data jsonb) PARTITION BY HASH (id);
  CREATE TABLE sales."Session_0" PARTITION OF sales."Session" FOR VALUES WITH (MODULUS 3, REMAINDER 0);
  CREATE TABLE sales."Session_1" PARTITION OF sales."Session" FOR VALUES WITH (MODULUS 3, REMAINDER 1);
  CREATE TABLE sales."Session_2" PARTITION OF sales."Session" FOR VALUES WITH (MODULUS 3, REMAINDER 2);
  INSERT INTO sales."Session" SELECT g, jsonb_build_object('n', g) FROM generate_series(1, 3000) g;

  CREATE TABLE sales.city (id int PRIMARY KEY, name text, population int CHECK (population > 0));
  CREATE TABLE sales.capital (state text) INHERITS (sales.city);
  ALTER TABLE sales.capital ADD PRIMARY KEY (id);
  INSERT INTO sales.city SELECT g, 'city ' || g, 1000 + g FROM generate_series(1, 500) g;
  INSERT INTO sales.capital SELECT g, 'capital ' || g, 100000 + g, 'state ' || g FROM generate_series(501, 550) g;
  ANALYZE;`;

const TABLES = [
  'sales."Session"', 'sales."Session_0"', 'sales."Session_1"', 'sales."Session_2"', 'sales.capital', 'sales.city', 'sales.customer',
  'sales.payment', 'sales.payment_2024', 'sales.payment_2025', 'sales.payment_2025_eu', 'sales.payment_2025_other', 'sales.payment_old',
  'sales.ticket', 'sales.ticket_closed', 'sales.ticket_open',
];

describe('partitioned tables and inheritance', () => {
  const sourceDb = uniqueName('parts');
  const name = uniqueName('parts').replace(/_/g, '-');
  const queue = `q-${name}`;
  const src = () => serverUrl('source', sourceDb);
  const targets: string[] = [];
  let worker: WorkerProcess | undefined;

  const target = (suffix: string) => {
    const db = `${sourceDb}_${suffix}`;
    targets.push(db);
    return { db, url: serverUrl('target', db) };
  };

  beforeAll(async () => {
    await createDatabase('source', sourceDb);
    await withClient(src(), (c) => c.query(FIXTURE));
    const env: Record<string, string> = { SRC_URL: src() };
    for (const suffix of ['fl', 'cdc', 'diff', 'root', 'attach']) env[`TGT_${suffix.toUpperCase()}`] = serverUrl('target', `${sourceDb}_${suffix}`);
    worker = await startWorker(cliEnv(queue, env));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), ...targets.map((t) => dropDatabase('target', t))]);
  });

  const plan = (suffix: string, mode: string, extra = '') =>
    writePlan(`
name: ${name}-${suffix}
mode: ${mode}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_${suffix.toUpperCase()} }
load: { parallel: 3, chunkRows: 4000 }
${extra}
`);
  const caughtUp = (migration: string) => untilCaughtUp(migration, cliEnv(queue), worker);

  it('full-load: the same schema by pg_dump, every parent and leaf equal; validation compares each parent as queried', async () => {
    const t = target('fl');
    const done = await dbferry(['start', plan('fl', 'full-load'), '--wait', '--json'], cliEnv(queue));
    expect({ code: done.code, failure: JSON.parse(done.stdout).failure }).toEqual({ code: 0, failure: undefined });
    const report = JSON.parse(done.stdout);
    expect(report.status.phase).toBe('completed');
    const payment = report.validation.tables.find((v: { table: string }) => v.table === 'sales.payment');
    expect(payment).toMatchObject({ equal: true, withDescendants: { sourceRows: '30000', targetRows: '30000' } });
    const city = report.validation.tables.find((v: { table: string }) => v.table === 'sales.city');
    expect(city).toMatchObject({ sourceRows: '500', equal: true, withDescendants: { sourceRows: '550', targetRows: '550' } });

    expect(await schemaDump(t.url, ['sales'])).toEqual(await schemaDump(src(), ['sales']));
    await expectSameTables(src(), t.url, TABLES);
  });

  it('validation says "different" when a partition is missing from its parent on the target, though each table equals its source', async () => {
    const t = target('diff');
    // The target, prepared so that the index build fails: the migration pauses before validate.
    await createDatabase('target', t.db);
    await withClient(t.url, (c) =>
      c.query(`
        CREATE FUNCTION refuse_index() RETURNS event_trigger LANGUAGE plpgsql AS $f$
        BEGIN RAISE EXCEPTION 'no index today'; END $f$;
        CREATE EVENT TRIGGER refuse_index ON ddl_command_start WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION refuse_index();`),
    );
    const paused = await dbferry(['start', plan('diff', 'full-load'), '--wait', '--json'], cliEnv(queue));
    expect({ code: paused.code, step: JSON.parse(paused.stdout).failure?.step }).toEqual({ code: 3, step: 'build-indexes' });
    await withClient(t.url, (c) => c.query('DROP EVENT TRIGGER refuse_index; ALTER TABLE sales.payment DETACH PARTITION sales.payment_old'));
    expect((await dbferry(['skip', `${name}-diff`], cliEnv(queue))).code).toBe(0);

    const different = await dbferry(['start', plan('diff', 'full-load'), '--wait', '--json'], cliEnv(queue));
    expect(different.code).toBe(3);
    const status = JSON.parse(different.stdout);
    expect(status.failure).toMatchObject({ step: 'validate', type: 'ValidationMismatch', table: 'sales.payment' });
    expect(status.failure.message).toContain('with its partitions or children');
    // Every table's own rows are equal: only the parent as queried tells the difference.
    expect(status.tables.filter((x: { validation: string }) => x.validation === 'different').map((x: { name: string }) => x.name)).toEqual(['sales.payment']);
    // Every table's result is kept on the target, the differing one among them.
    const kept = await withClient(t.url, (c) => c.query<{ table_key: string; equal: boolean }>('SELECT table_key, equal FROM _dbferry.table_validations ORDER BY table_key'));
    expect(kept.rows.filter((r) => !r.equal).map((r) => r.table_key)).toEqual(['sales.payment']);
    expect(kept.rows.map((r) => r.table_key)).toEqual(status.tables.map((x: { name: string }) => x.name).sort());
    expect((await dbferry(['abort', `${name}-diff`], cliEnv(queue))).code).toBe(0);
  });

  it('full-load-and-cdc: writes routed into partitions and children during CDC arrive; same schema, every table equal', async () => {
    const t = target('cdc');
    const run = await dbferry(['start', plan('cdc', 'full-load-and-cdc')], cliEnv(queue));
    expect(run.code).toBe(0);
    await caughtUp(`${name}-cdc`);
    // The application: inserts routed by the parents, rows moved between partitions, deletes,
    // inheritance children written through and beside their parent.
    const c = new Client({ connectionString: src() });
    await c.connect();
    try {
      for (let i = 0; i < 30; i++) {
        await c.query('BEGIN');
        await c.query(`INSERT INTO sales.payment VALUES ($1, $2, date '2025-03-01' + $3::int, $4, 9.99)`, [100000 + i, (i % 1000) + 1, i, i % 2 ? 'eu' : 'apac']);
        await c.query(`UPDATE sales.payment SET paid_at = date '2025-06-01', region = 'eu' WHERE id = $1`, [i * 7 + 1]);
        await c.query(`DELETE FROM sales.payment WHERE id = $1`, [i * 11 + 2]);
        await c.query(`UPDATE sales.ticket SET status = 'closed' WHERE id = $1 AND status <> 'closed'`, [i * 5 + 1]);
        await c.query(`INSERT INTO sales."Session" VALUES ($1, '{"new": true}')`, [10000 + i]);
        await c.query(`INSERT INTO sales.capital VALUES ($1, 'new capital', 5000, 'new state')`, [1000 + i]);
        await c.query(`UPDATE sales.city SET population = population + 1 WHERE id = $1`, [510 + (i % 40)]);
        await c.query('COMMIT');
      }
    } finally {
      await c.end();
    }
    await new Promise((r) => setTimeout(r, 1500));
    const cut = await dbferry(['cutover', `${name}-cdc`, '--wait', '--json'], cliEnv(queue));
    expect({ code: cut.code, err: cut.stderr.slice(-2000) }).toEqual({ code: 0, err: expect.any(String) });
    expect(JSON.parse(cut.stdout).status.phase).toBe('completed');

    expect(await schemaDump(t.url, ['sales'])).toEqual(await schemaDump(src(), ['sales']));
    await expectSameTables(src(), t.url, TABLES);
    // The writes really landed where an application reads them.
    expect((await tableFingerprint(t.url, 'sales.payment')).rows).toBe((await tableFingerprint(src(), 'sales.payment')).rows);
  });

  it("an application's publication with publish_via_partition_root: changes arrive as the root's and land in the right partitions", async () => {
    const t = target('root');
    await withClient(src(), (c) => c.query('CREATE PUBLICATION parts_root_pub FOR ALL TABLES WITH (publish_via_partition_root = true)'));
    try {
      expect((await dbferry(['start', plan('root', 'full-load-and-cdc', 'cdc: { publication: parts_root_pub }')], cliEnv(queue))).code).toBe(0);
      await caughtUp(`${name}-root`);
      await withClient(src(), (c) =>
        c.query(`
          INSERT INTO sales.payment VALUES (200001, 5, date '2024-02-02', 'us', 1.50), (200002, 6, date '2025-02-02', 'eu', 2.50), (200003, 7, date '2020-02-02', 'us', 3.50);
          UPDATE sales.payment SET paid_at = date '2025-07-07' WHERE id = 200001;
          DELETE FROM sales.payment WHERE id = 200003;
          INSERT INTO sales.ticket VALUES (90001, 'new', 'via root');`),
      );
      await new Promise((r) => setTimeout(r, 1500));
      const cut = await dbferry(['cutover', `${name}-root`, '--wait', '--json'], cliEnv(queue));
      expect({ code: cut.code, err: cut.stderr.slice(-2000) }).toEqual({ code: 0, err: expect.any(String) });
      await expectSameTables(src(), t.url, TABLES);
    } finally {
      await withClient(src(), (c) => c.query('DROP PUBLICATION IF EXISTS parts_root_pub'));
    }
  });

  it('a partition attached on the source during CDC pauses CDC naming it (its rows would be missing from the parent on the target)', async () => {
    target('attach');
    expect((await dbferry(['start', plan('attach', 'full-load-and-cdc')], cliEnv(queue))).code).toBe(0);
    await caughtUp(`${name}-attach`);
    await withClient(src(), (c) =>
      c.query(`CREATE TABLE sales.payment_2026 PARTITION OF sales.payment FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
               INSERT INTO sales.payment VALUES (300001, 5, date '2026-03-03', 'us', 9.00);`),
    );
    const deadline = Date.now() + 60_000;
    let status: { phase?: string; failure?: { type: string; message: string } } = {};
    while (status.phase !== 'awaiting-operator') {
      if (Date.now() > deadline) throw new Error(`no pause: ${JSON.stringify(status)}\n${worker?.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 1000));
      status = JSON.parse((await dbferry(['status', `${name}-attach`, '--json'], cliEnv(queue))).stdout || '{}');
    }
    expect(status.failure).toMatchObject({ type: 'SchemaChanged', message: expect.stringContaining('sales.payment_2026 was attached to sales.payment on the source') });
    expect((await dbferry(['abort', `${name}-attach`], cliEnv(queue))).code).toBe(0);
  });
});

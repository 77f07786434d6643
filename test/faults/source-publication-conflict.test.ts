import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

jest.setTimeout(4 * 60_000);

/**
 * Issue 11: a conflict on the source was reported as the target's ("fix the target"). The plan
 * names an existing publication of the application's that lacks a selected table: the pause
 * names the source, the publication and the table, with the remedy on the source; once the
 * table is added there, `retry` goes on, and at the end the publication, which dbferry did not
 * make, is kept.
 */
describe('fault: an existing publication on the source that lacks a selected table', () => {
  const sourceDb = uniqueName('faults_pub');
  const targetDb = uniqueName('faults_pub_t');
  const name = uniqueName('pub').replace(/_/g, '-');
  const queue = `q-${name}`;
  let src: string;
  let tgt: string;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    src = await createDatabase('source', sourceDb);
    tgt = await createDatabase('target', targetDb);
    await withClient(src, (c) =>
      c.query(`CREATE TABLE a (id int PRIMARY KEY, v text);
               CREATE TABLE b (id int PRIMARY KEY, v text);
               INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 500) g;
               INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 500) g;
               CREATE PUBLICATION app_pub FOR TABLE a;`),
    );
    worker = await startWorker(cliEnv(queue, { SRC_URL: src, TGT_URL: tgt }));
  });

  afterAll(async () => {
    await worker?.stop();
    await withClient(src, (c) => c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbferry_${name.replace(/-/g, '_')}'`)).catch(() => undefined);
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('pauses naming the source, the publication and the table; after the fix on the source, retry completes and the publication stays', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
cdc: { publication: app_pub }
`);
    const paused = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect(paused.code).toBe(3);
    const failure = JSON.parse(paused.stdout).failure;
    expect(failure.message).toMatch(/^source postgres\/.*publication app_pub \(on the source\) exists but does not publish public\.b/);
    expect(failure.message).not.toMatch(/target/);
    expect(failure.hint).toContain('on the source');

    await withClient(src, (c) => c.query('ALTER PUBLICATION app_pub ADD TABLE b'));
    expect((await dbferry(['retry', name], cliEnv(queue))).code).toBe(0);
    await untilCaughtUp(name, cliEnv(queue), worker);
    await withClient(src, (c) => c.query(`UPDATE b SET v = 'changed' WHERE id <= 10; DELETE FROM a WHERE id > 490`));
    await new Promise((r) => setTimeout(r, 1500));
    const cut = await dbferry(['cutover', name, '--wait', '--json'], cliEnv(queue));
    expect({ code: cut.code, err: cut.stderr.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
    const report = JSON.parse(cut.stdout);
    expect(report.finalize.cleanup.kept.join('\n')).toContain('publication app_pub (it existed before this migration)');
    await expectSameTables(src, tgt, ['public.a', 'public.b']);
    const pub = await withClient(src, (c) => c.query(`SELECT count(*)::int AS n FROM pg_publication WHERE pubname = 'app_pub'`));
    expect(pub.rows[0].n).toBe(1);
  });
});

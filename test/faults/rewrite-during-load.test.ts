import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { createBigAndSmall, untilLoadSnapshot } from '../support/load-faults';

/**
 * Fault of issue 18 (1): a table-rewriting ALTER TABLE committed on the source while the full
 * load runs, before that table is copied. The load's older snapshot sees a rewritten table as
 * empty (PostgreSQL's MVCC caveat): dbferry said "every table equal" with 0 rows on the target.
 * Now the load pauses naming the table; `dbferry retry` goes on under a new snapshot, and the
 * target has the rows an application reads on the source.
 */
describe('fault: a table rewritten on the source during the load', () => {
  const sourceDb = uniqueName('faults_rw');
  const targetDb = uniqueName('faults_rw_t');
  const name = uniqueName('rw').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;
  const src = () => serverUrl('source', sourceDb);
  const tgt = () => serverUrl('target', targetDb);

  beforeAll(async () => {
    await createDatabase('source', sourceDb);
    // `big` is copied first (largest first, one lane), long enough for the ALTER to land while
    // `small` waits for its turn.
    await createBigAndSmall(src(), 1500000);
    worker = await startWorker(cliEnv(queue, { SRC_URL: src(), TGT_URL: tgt() }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('pauses naming the table instead of loading it empty; retry loads its rows', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 1 }
`);
    const run = dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    // Once the load's snapshot exists (recorded on the target), rewrite `small` on the source.
    await untilLoadSnapshot(tgt());
    await withClient(src(), (c) => c.query('ALTER TABLE small ALTER COLUMN v TYPE varchar(100)'));

    const paused = await run;
    expect({ code: paused.code, out: paused.stdout.slice(0, 400) }).toEqual({ code: 3, out: expect.any(String) });
    const status = JSON.parse(paused.stdout);
    expect(status.failure).toMatchObject({ step: 'full-load', type: 'SchemaChanged', table: 'public.small' });
    expect(status.failure.message).toContain('rewritten after the load snapshot');

    const retried = await dbferry(['retry', name], cliEnv(queue));
    expect(retried.code).toBe(0);
    const done = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect(done.code).toBe(0);
    // What an application reads: the same rows on both sides.
    const fingerprint = (url: string) =>
      withClient(url, async (c) => (await c.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS d FROM small")).rows[0]);
    const [a, b] = await Promise.all([fingerprint(src()), fingerprint(tgt())]);
    expect(b).toEqual(a);
    expect(b.n).toBe(5000);
  });
});

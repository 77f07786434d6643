import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { createBigAndSmall, untilLoadSnapshot } from '../support/load-faults';

/**
 * Issue 18: a selected table dropped on the source while the full load runs. The load pauses
 * naming the table; besides abort, the operator can take the table out of the migration with
 * `dbferry skip`: its partial copy on the target is dropped and the other tables complete and
 * validate equal.
 */
describe('fault: a selected table dropped on the source during the load', () => {
  const sourceDb = uniqueName('faults_drop');
  const targetDb = uniqueName('faults_drop_t');
  const name = uniqueName('drop').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;
  const src = () => serverUrl('source', sourceDb);
  const tgt = () => serverUrl('target', targetDb);

  beforeAll(async () => {
    await createDatabase('source', sourceDb);
    await createBigAndSmall(src(), 1500000);
    worker = await startWorker(cliEnv(queue, { SRC_URL: src(), TGT_URL: tgt() }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('pauses naming the table; skip takes it out of the migration and the rest completes equal', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 1 }
`);
    const run = dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    await untilLoadSnapshot(tgt());
    await withClient(src(), (c) => c.query('DROP TABLE small'));

    const paused = await run;
    expect({ code: paused.code, out: paused.stdout.slice(0, 400) }).toEqual({ code: 3, out: expect.any(String) });
    const status = JSON.parse(paused.stdout);
    expect(status.failure).toMatchObject({ step: 'full-load', type: 'SourceObjectMissing', table: 'public.small' });
    expect(status.failure.hint).toContain(`dbferry skip ${name}`);

    const skipped = await dbferry(['skip', name, '--reason', 'small was retired'], cliEnv(queue));
    expect({ code: skipped.code, out: skipped.stdout + skipped.stderr }).toEqual({ code: 0, out: expect.stringContaining('public.small') });
    const done = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect({ code: done.code, err: done.stderr.slice(-1000) }).toEqual({ code: 0, err: expect.any(String) });
    const report = JSON.parse(done.stdout);
    expect(report.status.phase).toBe('completed');
    expect(report.status.tables.map((t: { name: string }) => t.name)).toEqual(['public.big']);
    expect(report.status.leftOut).toEqual([expect.objectContaining({ table: 'public.small' })]);

    // The target mirrors the source: no `small`, and `big` as an application reads it.
    const tables = await withClient(tgt(), (c) => c.query("SELECT to_regclass('public.small') AS t"));
    expect(tables.rows[0].t).toBeNull();
    const fingerprint = (url: string) =>
      withClient(url, async (c) => (await c.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || pad, ',' ORDER BY id)) AS d FROM big")).rows[0]);
    const [a, b] = await Promise.all([fingerprint(src()), fingerprint(tgt())]);
    expect(b).toEqual(a);
  });
});

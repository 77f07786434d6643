import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { createBigAndSmall, untilLoadSnapshot } from '../support/load-faults';

/**
 * Also seen in issue 18: `ADD COLUMN … DEFAULT 'x'` on the source during the load (no rewrite:
 * the load goes through) lost the new column silently on the target, and validation, comparing
 * the migrated columns only, said "equal". Validation now compares the source's columns with the
 * target's and pauses naming the table and the column; once the target has it, retry validates.
 */
describe('fault: a column added on the source during the load', () => {
  const sourceDb = uniqueName('faults_col');
  const targetDb = uniqueName('faults_col_t');
  const name = uniqueName('col').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;
  const src = () => serverUrl('source', sourceDb);
  const tgt = () => serverUrl('target', targetDb);

  beforeAll(async () => {
    await createDatabase('source', sourceDb);
    await createBigAndSmall(src(), 1000000);
    worker = await startWorker(cliEnv(queue, { SRC_URL: src(), TGT_URL: tgt() }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('validation pauses naming the table and the column; with the column on the target, retry completes', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 1 }
`);
    const run = dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    await untilLoadSnapshot(tgt());
    await withClient(src(), (c) => c.query(`ALTER TABLE small ADD COLUMN extra text DEFAULT 'x'`));

    const paused = await run;
    expect(paused.code).toBe(3);
    const status = JSON.parse(paused.stdout);
    expect(status.failure).toMatchObject({ step: 'validate', type: 'SchemaChanged' });
    expect(status.failure.message).toContain('public.small has column extra on the source, not on the target');

    await withClient(tgt(), (c) => c.query(`ALTER TABLE small ADD COLUMN extra text DEFAULT 'x'`));
    expect((await dbferry(['retry', name], cliEnv(queue))).code).toBe(0);
    expect((await dbferry(['start', plan, '--wait'], cliEnv(queue))).code).toBe(0);
    const fingerprint = (url: string) =>
      withClient(url, async (c) => (await c.query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || v || ':' || extra, ',' ORDER BY id)) AS d FROM small")).rows[0]);
    expect(await fingerprint(tgt())).toEqual(await fingerprint(src()));
  });
});

import { createSampleDatabase } from '../../local/sample-data';
import { waitFor } from '../../local/processes';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, plantCheckOnCreate, serverUrl, uniqueName } from '../support/databases';

/**
 * Also seen in issue 18: an aborted run left a partly loaded target, and the new run of the
 * same migration paused saying "a table it did not create" about tables dbferry itself had
 * created. The pause must say what they are: left by an earlier run of this migration.
 */
describe('fault: a new run after an aborted one names the tables the earlier run left', () => {
  const sourceDb = uniqueName('faults_rerun');
  const targetDb = uniqueName('faults_rerun_t');
  const name = uniqueName('rerun').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;
  const status = async () => JSON.parse((await dbferry(['status', name, '--json'], cliEnv(queue))).stdout);

  beforeAll(async () => {
    await createSampleDatabase(serverUrl('source'), sourceDb, 1500);
    const target = await createDatabase('target', targetDb);
    // The first run fails mid-load: a check planted the moment dbferry creates order_items.
    await plantCheckOnCreate(target, 'public.order_items', 'order_id < 300');
    worker = await startWorker(cliEnv(queue, { SRC_URL: serverUrl('source', sourceDb), TGT_URL: target }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('says the tables were created by an earlier run of the migration', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: false }
`);
    expect((await dbferry(['start', plan, '--wait'], cliEnv(queue))).code).toBe(3);
    expect((await dbferry(['abort', name], cliEnv(queue))).code).toBe(0);
    await waitFor('the abort', 30_000, async () => ((await status()).phase === 'aborted' ? true : undefined));
    // `list` says aborted, not "aborted FAILED" (the workflow fails by design when aborted).
    const listed = await waitFor('the aborted migration in list', 30_000, async () =>
      (await dbferry(['list'], cliEnv(queue))).stdout.split('\n').find((l) => l.startsWith(name) && l.includes('aborted')),
    );
    expect(listed).toMatch(/aborted\s+ended/);
    expect(listed).not.toContain('FAILED');

    const again = await dbferry(['start', plan, '--wait'], cliEnv(queue));
    expect(again.code).toBe(3);
    const s = await status();
    expect(s.failure).toMatchObject({ step: 'create-tables', type: 'TargetObjectConflict' });
    expect(s.failure.message).toContain(`created by an earlier run of migration ${name}`);
    expect(s.failure.message).not.toContain('did not create');
  });
});

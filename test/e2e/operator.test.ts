import { createSampleDatabase } from '../../local/sample-data';
import { waitFor } from '../../local/processes';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, tableFingerprint, userTables } from '../support/compare';
import { createDatabase, dropDatabase, plantCheckOnCreate, serverUrl, uniqueName, withClient } from '../support/databases';

/**
 * A failed step waits for a person: a table planted on the target stops create-tables, the
 * operator sees which table, cannot skip the step, fixes the target and retries; a second
 * migration is aborted and says what it left behind.
 */
describe('operator decisions on a paused migration', () => {
  const sourceDb = uniqueName('opsrc');
  const targetDbs = [uniqueName('optgt'), uniqueName('optgt'), uniqueName('optgt')];
  const names = [uniqueName('op').replace(/_/g, '-'), uniqueName('ab').replace(/_/g, '-'), uniqueName('dat').replace(/_/g, '-')];
  const queue = `q-${names[0]}`;
  const secrets = {
    SRC_URL: serverUrl('source', sourceDb),
    TGT1_URL: serverUrl('target', targetDbs[0]!),
    TGT2_URL: serverUrl('target', targetDbs[1]!),
    TGT3_URL: serverUrl('target', targetDbs[2]!),
  };
  let worker: WorkerProcess;
  const plan = (i: number) =>
    writePlan(`
name: ${names[i]}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT${i + 1}_URL, createDatabase: false }
`);
  const plantConflict = async (db: string) => {
    const url = await createDatabase('target', db);
    await withClient(url, (c) => c.query('CREATE TABLE public.orders (planted_by_someone_else int)'));
    return url;
  };
  const status = async (name: string) => JSON.parse((await dbferry(['status', name, '--json'], cliEnv(queue))).stdout);

  beforeAll(async () => {
    await createSampleDatabase(serverUrl('source'), sourceDb, 1500);
    await Promise.all(targetDbs.slice(0, 2).map(plantConflict));
    worker = await startWorker(cliEnv(queue, secrets));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), ...targetDbs.map((d) => dropDatabase('target', d))]);
  });

  it('pauses on the conflicting table, refuses skip, and completes after the table is dropped and retry is sent', async () => {
    const planFile = plan(0);
    const first = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(first.code).toBe(3);
    expect(first.stdout).toContain('FAILED STEP: create-tables (TargetObjectConflict) on table public.orders');

    // With every worker stopped, status still shows the failure (describe + memo, no query).
    await worker.stop();
    const paused = await status(names[0]!);
    expect(paused.phase).toBe('awaiting-operator');
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'create-tables', type: 'TargetObjectConflict', table: 'public.orders' }));
    expect(paused.failure.message).toContain('public.orders already exists');
    worker = await startWorker(cliEnv(queue, secrets));

    const skip = await dbferry(['skip', names[0]!], cliEnv(queue));
    expect(skip.code).toBe(5);
    expect(skip.stderr).toContain('create-tables cannot be skipped');

    // Nothing was half-written: the failed step created no table at all.
    const target = serverUrl('target', targetDbs[0]!);
    expect(await userTables(target)).toEqual(['public.orders']);

    await withClient(target, (c) => c.query('DROP TABLE public.orders'));
    const retry = await dbferry(['retry', names[0]!, '--reason', 'dropped the planted table'], cliEnv(queue));
    expect(retry.stdout).toContain('retry accepted for create-tables');
    expect(retry.code).toBe(0);

    const done = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(done.stderr).toMatch(/already (running|completed)/);
    expect(done.code).toBe(0);
    const source = serverUrl('source', sourceDb);
    const tables = await userTables(source);
    await expectSameTables(source, target, tables);

    const final = await status(names[0]!);
    expect(final.phase).toBe('completed');
    expect(final.steps.find((s: { step: string }) => s.step === 'create-tables').operatorRetries).toBe(1);
    expect(final.decisions).toEqual([expect.objectContaining({ action: 'retry', reason: 'dropped the planted table', pausedStep: 'create-tables' })]);

    const late = await dbferry(['retry', names[0]!], cliEnv(queue));
    expect(late.code).toBe(5);
    expect(late.stderr).toContain('not running');
  });

  it('ends with abort: status reports what is left where, and later decisions exit 7', async () => {
    const planFile = plan(1);
    const waiting = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(waiting.code).toBe(3);
    const early = await dbferry(['retry', 'no-such-migration'], cliEnv(queue));
    expect(early.code).toBe(4);

    const abort = await dbferry(['abort', names[1]!, '--reason', 'not today'], cliEnv(queue));
    expect(abort.code).toBe(0);
    expect(abort.stdout).toContain('abort accepted');

    const s = await waitFor('the abort', 30_000, async () => {
      const st = await status(names[1]!);
      return st.phase === 'aborted' ? st : undefined;
    });
    expect(s.workflow.status).toBe('FAILED');
    expect(s.leftBehind.join('\n')).toContain('nothing');
    expect(s.decisions[0]).toEqual(expect.objectContaining({ action: 'abort', reason: 'not today' }));
    const again = await dbferry(['retry', names[1]!], cliEnv(queue));
    expect(again.code).toBe(7);
    expect(again.stderr).toContain('was aborted');
  });

  it('a row the target refuses in the middle of a COPY pauses the load (no hang); retry after the fix reloads cleanly', async () => {
    // An event trigger on the target adds, the moment dbferry creates order_items, a check that
    // rows past the first few hundred violate: the COPY fails mid-stream.
    const target = await createDatabase('target', targetDbs[2]!);
    await plantCheckOnCreate(target, 'public.order_items', 'order_id < 300');
    const planFile = plan(2);
    const paused = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(paused.code).toBe(3);
    const s = await status(names[2]!);
    expect(s.failure).toEqual(expect.objectContaining({ step: 'full-load', type: 'DataError', table: 'public.order_items' }));
    expect(s.failure.message).toContain('planted');

    await withClient(target, (c) => c.query('DROP EVENT TRIGGER plant; ALTER TABLE public.order_items DROP CONSTRAINT planted'));
    const retry = await dbferry(['retry', names[2]!], cliEnv(queue));
    expect(retry.code).toBe(0);
    const done = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(done.code).toBe(0);
    const source = serverUrl('source', sourceDb);
    for (const t of await userTables(source)) expect(await tableFingerprint(target, t)).toEqual(await tableFingerprint(source, t));
  });
});

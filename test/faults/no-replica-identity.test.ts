import { Client } from 'pg';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

jest.setTimeout(4 * 60_000);

/**
 * dbferry never breaks the source (issue 11, seen under faults): a table without a replica
 * identity, accepted with `skip` at preflight, was put in dbferry's publication, and PostgreSQL
 * then refused the application's every UPDATE and DELETE on it while the migration waited for
 * the operator. An application updates and deletes in such a table throughout; whatever the
 * operator decides (skip at preflight, retry, skip at CDC to take the table out, pause, resume,
 * cutover), it sees zero failed transactions, and the migration completes without the table.
 */
describe('fault: a table without a replica identity and an application writing to it', () => {
  const sourceDb = uniqueName('faults_ri');
  const targetDb = uniqueName('faults_ri_t');
  const name = uniqueName('ri').replace(/_/g, '-');
  const queue = `q-${name}`;
  let src: string;
  let tgt: string;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    src = await createDatabase('source', sourceDb);
    tgt = await createDatabase('target', targetDb);
    await withClient(src, (c) =>
      c.query(`CREATE TABLE keyed (id int PRIMARY KEY, v text);
               INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 1000) g;
               CREATE TABLE log (n int, note text);
               INSERT INTO log SELECT g, 'n' || g FROM generate_series(1, 1000) g;`),
    );
    worker = await startWorker(cliEnv(queue, { SRC_URL: src, TGT_URL: tgt }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('the application never fails: not while paused, not after skip, retry, pause or cutover; the table can be taken out', async () => {
    // The application: updates and deletes in `log` (and inserts), counting what fails.
    let writing = true;
    const failures: string[] = [];
    let committed = 0;
    const app = (async () => {
      const c = new Client({ connectionString: src });
      await c.connect();
      for (let i = 0; writing; i++) {
        try {
          await c.query('BEGIN');
          await c.query('UPDATE log SET note = $2 WHERE n = $1', [1 + (i % 1000), `u${i}`]);
          await c.query('DELETE FROM log WHERE n = $1', [2000 + i - 1]);
          await c.query('INSERT INTO log VALUES ($1, $2)', [2000 + i, `i${i}`]);
          await c.query('COMMIT');
          committed++;
        } catch (err) {
          failures.push((err as Error).message);
          await c.query('ROLLBACK').catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await c.end();
    })();
    const status = async () => JSON.parse((await dbferry(['status', name, '--json'], cliEnv(queue))).stdout);
    try {
      const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: false }
`);
      // Preflight blocks on `log` naming the remedy; the operator accepts it.
      const first = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
      expect(first.code).toBe(3);
      expect((await status()).failure).toMatchObject({ step: 'preflight', type: 'PreflightBlocked' });
      expect((await status()).failure.message).toMatch(/public\.log has no primary key.*REPLICA IDENTITY FULL/);
      expect((await dbferry(['skip', name], cliEnv(queue))).code).toBe(0);
      // The load runs (the publication and slot exist from its start); CDC then refuses `log`.
      const second = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
      expect(second.code).toBe(3);
      expect((await status()).failure).toMatchObject({ step: 'cdc', type: 'PreflightBlocked', table: 'public.log' });
      expect((await dbferry(['retry', name], cliEnv(queue))).code).toBe(0);
      expect((await dbferry(['start', plan, '--wait'], cliEnv(queue))).code).toBe(3);
      // The pause offers to take the table out (its changes cannot be captured); the operator does.
      expect((await status()).failure.hint).toContain(`dbferry skip ${name}`);
      const skipped = await dbferry(['skip', name], cliEnv(queue));
      expect({ code: skipped.code, out: skipped.stdout }).toEqual({ code: 0, out: expect.stringContaining('public.log is taken out of the migration') });
      await untilCaughtUp(name, cliEnv(queue), worker);
      // Pause and resume CDC while the application goes on writing.
      expect((await dbferry(['pause', name], cliEnv(queue))).code).toBe(0);
      await new Promise((r) => setTimeout(r, 2_000));
      expect((await dbferry(['resume', name], cliEnv(queue))).code).toBe(0);
      await untilCaughtUp(name, cliEnv(queue), worker);
      await withClient(src, (c) => c.query(`UPDATE keyed SET v = 'last' WHERE id <= 5`));
      await new Promise((r) => setTimeout(r, 1_500));
      // `log` is not migrated any more: the application may go on writing to it through cutover.
      const cut = await dbferry(['cutover', name, '--wait', '--json'], cliEnv(queue));
      expect({ code: cut.code, err: cut.stderr.slice(-1500) }).toEqual({ code: 0, err: expect.any(String) });
      const report = JSON.parse(cut.stdout);
      expect(report.status.leftOut).toEqual([expect.objectContaining({ table: 'public.log' })]);
      await expectSameTables(src, tgt, ['public.keyed']);
    } finally {
      writing = false;
      await app;
    }
    expect(committed).toBeGreaterThan(50);
    expect(failures).toEqual([]);
    // Nothing of dbferry's is left on the source.
    const left = await withClient(src, (c) =>
      c.query("SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int AS slots, (SELECT count(*) FROM pg_publication)::int AS pubs"),
    );
    expect(left.rows[0]).toEqual({ slots: 0, pubs: 0 });
  });
});

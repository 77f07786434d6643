import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

/**
 * Issue 11 (validation must see what an application sees): a source user subject to row-level
 * security (the table's owner under FORCE ROW LEVEL SECURITY) read only the rows its policy
 * let through, in the load and in the checksum alike, and dbferry said "equal" with half the
 * rows. Now every dbferry session has row_security off, as pg_dump does: the load pauses
 * naming the table and the remedy, and after BYPASSRLS it loads every row.
 */
describe('fault: a source user that row-level security would filter', () => {
  const sourceDb = uniqueName('faults_rls');
  const targetDb = uniqueName('faults_rls_t');
  const name = uniqueName('rls').replace(/_/g, '-');
  const role = `rls_${Date.now().toString(36)}`;
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    const src = await createDatabase('source', sourceDb);
    await withClient(serverUrl('source'), (c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'rls-secret'`));
    await withClient(src, (c) =>
      c.query(`CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
               INSERT INTO accounts SELECT g, CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END FROM generate_series(1, 1000) g;
               ALTER TABLE accounts OWNER TO ${role};
               ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
               ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
               CREATE POLICY only_alice ON accounts USING (owner = 'alice');
               GRANT USAGE ON SCHEMA public TO ${role};`),
    );
    const url = new URL(src);
    url.username = role;
    url.password = 'rls-secret';
    worker = await startWorker(cliEnv(queue, { SRC_URL: url.toString(), TGT_URL: serverUrl('target', targetDb) }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
    await withClient(serverUrl('source'), (c) => c.query(`DROP ROLE IF EXISTS ${role}`)).catch(() => undefined);
  });

  it('pauses naming the table and the remedy instead of loading the rows the policy lets through; with BYPASSRLS every row', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
`);
    const paused = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect(paused.code).toBe(3);
    const failure = JSON.parse(paused.stdout).failure;
    expect(failure).toMatchObject({ step: 'full-load', type: 'PermissionDenied', table: 'public.accounts' });
    expect(failure.message).toContain('row-level security');
    expect(failure.hint).toContain('BYPASSRLS');

    await withClient(serverUrl('source'), (c) => c.query(`ALTER ROLE ${role} BYPASSRLS`));
    expect((await dbferry(['retry', name], cliEnv(queue))).code).toBe(0);
    const done = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect(done.code).toBe(0);
    const n = await withClient(serverUrl('target', targetDb), (c) => c.query('SELECT count(*)::int AS n FROM accounts'));
    expect(n.rows[0].n).toBe(1000);
  });
});

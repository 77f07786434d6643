import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

/**
 * Fault of issue 18 (2): a key-chunked table loaded under two snapshot generations (the
 * snapshot holder's worker killed mid-load) while a writer changes its first and last rows in
 * one transaction: the target held a state that never existed (first and last row from
 * different moments) and validation said "equal". Now the table is reloaded under one snapshot:
 * the writer's invariant (first.v = last.v) holds on the target.
 */
describe('fault: a chunked table whose chunks come from two snapshots', () => {
  const sourceDb = uniqueName('faults_gen');
  const targetDb = uniqueName('faults_gen_t');
  const name = uniqueName('gen').replace(/_/g, '-');
  const queue = `q-${name}`;
  const secrets = { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb) };
  const workers: WorkerProcess[] = [];
  const ROWS = 300_000;

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, (c) =>
      c.query(`CREATE TABLE pair (id bigint PRIMARY KEY, v bigint NOT NULL, pad text NOT NULL);
               INSERT INTO pair SELECT g, 0, repeat(md5(g::text), 4) FROM generate_series(1, ${ROWS}) g; ANALYZE;`),
    );
    for (let i = 0; i < 2; i++) workers.push(await startWorker(cliEnv(queue, secrets)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('is reloaded under one snapshot: the first and last rows agree, as on the source at any moment', async () => {
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 1, chunkRows: 20000 }
`);
    // The writer: first and last row always change together.
    let writing = true;
    const writer = withClient(secrets.SRC_URL, async (c) => {
      for (let n = 1; writing; n++) {
        await c.query(`UPDATE pair SET v = $1 WHERE id IN (1, ${ROWS})`, [n]);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    const run = dbferry(['start', plan, '--wait'], cliEnv(queue));
    const { client, close } = await temporalClient();
    try {
      // Once a few chunks are in, kill the worker that holds the snapshot: the rest loads under a new one.
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error('the load never got going');
        const d = await client.workflow.getHandle(migrationWorkflowId(name)).describe().catch(() => undefined);
        const holder = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'holdSnapshot')?.lastWorkerIdentity ?? '';
        const done = await withClient(secrets.TGT_URL, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM _dbferry.table_loads')).catch(() => undefined);
        if (holder && (done?.rows[0]?.n ?? 0) >= 2) {
          await workers.find((w) => w.child.pid === Number(holder.split('@')[0]))!.stop('SIGKILL');
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const res = await run;
      expect({ code: res.code, out: res.stdout.slice(-300) }).toEqual({ code: 0, out: expect.stringContaining('every table equal') });
    } finally {
      writing = false;
      await writer;
      await close();
    }
    const gens = await withClient(secrets.TGT_URL, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM _dbferry.snapshots'));
    expect(gens.rows[0]!.n).toBeGreaterThanOrEqual(2);
    const ends = await withClient(secrets.TGT_URL, (c) => c.query<{ id: string; v: string }>(`SELECT id::text, v::text FROM pair WHERE id IN (1, ${ROWS}) ORDER BY id`));
    expect(ends.rows).toHaveLength(2);
    expect(ends.rows[0]!.v).toBe(ends.rows[1]!.v);
    const count = await withClient(secrets.TGT_URL, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM pair'));
    expect(count.rows[0]!.n).toBe(ROWS);
  });
});

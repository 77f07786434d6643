import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { untilStatus, waitFor } from '../support/wait';

jest.setTimeout(6 * 60_000);

/** CDC meets an operator: a schema change pauses it, abort and cleanup leave nothing on the source. */
describe('CDC and the operator', () => {
  const sourceDb = uniqueName('cdcop');
  const targetDb = uniqueName('cdcop_copy');
  const queue = `q-${uniqueName('cdcop')}`;
  let secrets: Record<string, string>;
  let worker: WorkerProcess;
  let src: string;
  let tgt: string;

  // An alert receiver: CDC's own alerts (WAL held by the slot) and the pause.
  const alerts: Array<{ kind: string; text: string }> = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });

  beforeAll(async () => {
    src = await createDatabase('source', sourceDb);
    tgt = await createDatabase('target', targetDb);
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    secrets = { SRC_URL: src, TGT_URL: tgt, HOOK: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` };
    worker = await startWorker(cliEnv(queue, secrets));
  });

  afterAll(async () => {
    hook.close();
    await worker.stop('SIGKILL');
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  const slotsAndPublications = () =>
    withClient(src, async (c) => ({
      slots: (await c.query('SELECT slot_name FROM pg_replication_slots WHERE database = current_database() ORDER BY 1')).rows.map((r) => r.slot_name),
      publications: (await c.query('SELECT pubname FROM pg_publication ORDER BY 1')).rows.map((r) => r.pubname),
    }));

  it('a column type change pauses CDC naming table and column; retry after fixing the target resumes; abort drops slot and publication', async () => {
    await withClient(src, (c) =>
      c.query(`CREATE TABLE measures (id int PRIMARY KEY, v int NOT NULL, label text);
               INSERT INTO measures SELECT g, g, 'm' || g FROM generate_series(1, 1000) g;`),
    );
    const name = uniqueName('typechange').replace(/_/g, '-');
    const planFile = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: true }
tables: { include: [public.measures] }
alerts: { webhook: env:HOOK, slotWalGb: 0.000001 }   # ~1 kB: any write trips it
`);
    const started = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect({ code: started.code, out: started.stdout }).toEqual({ code: 0, out: expect.stringContaining('CDC has caught up') });

    await withClient(src, (c) => c.query(`INSERT INTO measures VALUES (1001, 1001, 'before')`));
    await waitFor('the insert on the target', () => rowExists(tgt, 1001));
    await withClient(src, (c) => c.query(`ALTER TABLE measures ALTER COLUMN v TYPE bigint; INSERT INTO measures VALUES (1002, 5000000000, 'after')`));

    const paused = await untilStatus(name, (s) => s.phase === 'awaiting-operator');
    expect(paused.failure).toMatchObject({ step: 'cdc', type: 'SchemaChanged', table: 'public.measures' });
    expect(paused.failure.message).toMatch(/column v is bigint on the source, integer on the target/);
    expect(await rowExists(tgt, 1002)).toBe(false);

    // The operator makes the target match, then retries: CDC goes on from where it stopped.
    await withClient(tgt, (c) => c.query('ALTER TABLE measures ALTER COLUMN v TYPE bigint'));
    const retried = await dbferry(['retry', name], cliEnv(queue));
    expect(retried.code).toBe(0);
    await waitFor('the row written after the type change', () => rowExists(tgt, 1002));

    // Pause holds apply (the slot keeps the change); resume applies it.
    const pause = await dbferry(['pause', name, '--reason', 'maintenance'], cliEnv(queue));
    expect({ code: pause.code, out: pause.stdout }).toEqual({ code: 0, out: expect.stringContaining('paused') });
    expect((await dbferry(['pause', name], cliEnv(queue))).code).toBe(5); // already paused
    expect((await dbferry(['cutover', name], cliEnv(queue))).stderr).toMatch(/paused/);
    await withClient(src, (c) => c.query(`INSERT INTO measures VALUES (1003, 3, 'while paused')`));
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await rowExists(tgt, 1003)).toBe(false);
    const shown = await dbferry(['status', name], cliEnv(queue));
    expect(shown.stdout).toMatch(/PAUSED by the operator .*\(maintenance\)/);
    expect((await dbferry(['resume', name], cliEnv(queue))).code).toBe(0);
    await waitFor('the row written while paused', () => rowExists(tgt, 1003));
    // WAL the slot must keep until its next restart point (running-transactions records come
    // every 15 s): well over the ~1 kB threshold for a few polls of the applier (every 5 s).
    await withClient(src, (c) => c.query(`INSERT INTO measures SELECT g, g, repeat('w', 200) FROM generate_series(2000, 2999) g`));
    await waitFor('the alerts', async () => alerts.some((a) => a.kind === 'slot-wal') && alerts.some((a) => a.kind === 'paused'));
    expect(alerts.find((a) => a.kind === 'slot-wal')!.text).toMatch(/replication slot dbferry_typechange_\w+ holds .* GB on the source/);
    expect(alerts.find((a) => a.kind === 'paused')!.text).toMatch(/step \*cdc\* failed \(SchemaChanged\) on public\.measures/);

    // Abort while CDC runs: the migration ends and the source keeps no slot or publication.
    const abort = await dbferry(['abort', name, '--reason', 'test'], cliEnv(queue));
    expect({ code: abort.code, stderr: abort.stderr }).toEqual({ code: 0, stderr: '' });
    const aborted = await untilStatus(name, (s) => s.phase === 'aborted');
    expect(aborted.leftBehind.join('\n')).toMatch(/replication slot .* dropped/);
    expect(await slotsAndPublications()).toEqual({ slots: [], publications: [] });
    await withClient(tgt, (c) => c.query('DROP TABLE measures; DROP SCHEMA _dbferry CASCADE'));
  });

  it('mode cdc applies to a target loaded beforehand, keeps a publication it did not create, and cleanup drops a forgotten slot', async () => {
    await withClient(src, (c) =>
      c.query(`CREATE TABLE "Line Items" ("Order" int, line int, qty int, PRIMARY KEY ("Order", line));
               INSERT INTO "Line Items" SELECT g / 10, g % 10, g FROM generate_series(1, 5000) g;
               CREATE PUBLICATION app_pub FOR TABLE "Line Items";`),
    );
    // Loaded "some other way": the same rows, the same key.
    await withClient(tgt, (c) =>
      c.query(`CREATE TABLE "Line Items" ("Order" int, line int, qty int, PRIMARY KEY ("Order", line));
               INSERT INTO "Line Items" SELECT g / 10, g % 10, g FROM generate_series(1, 5000) g;`),
    );
    const name = uniqueName('cdconly').replace(/_/g, '-');
    const planFile = lineItemsPlan(name);
    const started = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect({ code: started.code, out: started.stdout }).toEqual({ code: 0, out: expect.stringContaining('CDC has caught up') });
    await withClient(src, (c) =>
      c.query(`UPDATE "Line Items" SET qty = -qty WHERE "Order" < 100;
               DELETE FROM "Line Items" WHERE "Order" BETWEEN 200 AND 210;
               INSERT INTO "Line Items" SELECT 1000 + g, 0, g FROM generate_series(1, 300) g;`),
    );
    const cut = await dbferry(['cutover', name, '--wait'], cliEnv(queue));
    expect({ code: cut.code, out: cut.stdout }).toEqual({ code: 0, out: expect.stringContaining('validation: every table equal') });
    await expectSameTables(src, tgt, ['public."Line Items"']);
    expect(await slotsAndPublications()).toEqual({ slots: [], publications: ['app_pub'] });

    // A migration that was terminated mid-CDC leaves its slot behind: cleanup removes it.
    const forgotten = uniqueName('forgotten').replace(/_/g, '-');
    const forgottenPlan = lineItemsPlan(forgotten);
    const second = await dbferry(['start', forgottenPlan, '--wait'], cliEnv(queue));
    expect(second.code).toBe(0);
    const refused = await dbferry(['cleanup', forgotten], cliEnv(queue));
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 5, stderr: expect.stringMatching(/still running/) });
    const { client, close } = await temporalClient();
    try {
      await client.workflow.getHandle(migrationWorkflowId(forgotten)).terminate('the test forgets it');
    } finally {
      await close();
    }
    expect((await slotsAndPublications()).slots).toEqual([`dbferry_${forgotten.replace(/-/g, '_')}`]);
    const cleaned = await dbferry(['cleanup', forgotten], cliEnv(queue));
    expect({ code: cleaned.code, stdout: cleaned.stdout }).toEqual({ code: 0, stdout: expect.stringMatching(/dropped .*replication slot/) });
    expect(cleaned.stdout).toMatch(/kept .*publication app_pub \(it existed before this migration\)/);
    expect(await slotsAndPublications()).toEqual({ slots: [], publications: ['app_pub'] });
  });
});

/** Mode cdc of "Line Items" through the publication the application made. */
function lineItemsPlan(name: string): string {
  return writePlan(`
name: ${name}
mode: cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
tables: { include: ['public.Line Items'] }
cdc: { publication: app_pub }
`);
}

async function rowExists(url: string, id: number): Promise<boolean> {
  return withClient(url, async (c) => (await c.query('SELECT 1 FROM measures WHERE id = $1', [id])).rows.length > 0);
}

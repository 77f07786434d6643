import { Connection } from '@temporalio/client';
import { freePort } from '../../local/processes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan } from '../support/cli';

/** The CLI's server commands: a local dev server, namespace setup, a worker that stops cleanly. */
describe('dbferry dev-server, setup-namespace and worker', () => {
  it('dev-server serves Temporal with the search attributes; setup-namespace finds them; SIGINT stops it', async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const server = dbferry(['dev-server', '--port', String(port), '--ui-port', String(uiPort)], process.env);
    try {
      const address = `127.0.0.1:${port}`;
      let connection: Connection | undefined;
      for (let i = 0; i < 120 && !connection; i++) {
        connection = await Connection.connect({ address, connectTimeout: 500 }).catch(() => undefined);
        if (!connection) await new Promise((r) => setTimeout(r, 250));
      }
      expect(connection).toBeDefined();
      const attrs = await connection!.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(attrs.customAttributes ?? {})).toEqual(
        expect.arrayContaining(['DbferryMigration', 'DbferryPhase', 'DbferrySource', 'DbferryTarget']),
      );
      await connection!.close();
      const setup = await dbferry(['setup-namespace'], { ...process.env, TEMPORAL_ADDRESS: address });
      expect(setup.code).toBe(0);
      expect(setup.stdout).toContain('already registered');
    } finally {
      server.child.kill('SIGINT');
    }
    const res = await server;
    expect(res.stderr).toContain(`Web UI http://127.0.0.1:${uiPort}`);
  });

  it('a worker shuts down gracefully on SIGTERM (exit 0)', async () => {
    const worker = await startWorker(cliEnv('q-shutdown'));
    const exited = new Promise<number | null>((r) => worker.child.once('exit', (code) => r(code)));
    worker.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(worker.output()).toMatch(/STOPPED|shut/i);
  });

  it('one Ctrl-C stops a waiting `start --wait` (no worker ever picks the migration up)', async () => {
    const plan = writePlan('name: ctrl-c\nsource: { engine: postgres, url: env:X }\ntarget: { engine: postgres, url: env:Y }\n');
    const run = dbferry(['start', plan, '--wait'], cliEnv('q-nobody-listens'));
    const { client, close } = await temporalClient();
    // Interrupt it once it waits (the workflow exists), however slow the machine is today.
    for (let i = 0; i < 300 && !(await client.workflow.getHandle('migration-ctrl-c').describe().catch(() => undefined)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    run.child.kill('SIGINT');
    const res = await run;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.code).not.toBe(0);
    await client.workflow.getHandle('migration-ctrl-c').terminate('test over').finally(close);
  });

  it('rejects bad arguments with exit 2', async () => {
    const res = await dbferry(['worker', '--max-activities', 'zero'], process.env);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--max-activities: expected a positive integer');
    const unknown = await dbferry(['frobnicate'], process.env);
    expect(unknown.code).toBe(2);
  });
});

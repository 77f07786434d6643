import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { untilStatus } from '../support/wait';

jest.setTimeout(5 * 60_000);

/**
 * CDC must start where the binlog no longer is (the load took longer than the server keeps its
 * binlog): the migration waits for the operator with the position and the retention setting,
 * and nothing is applied.
 */
describe('MySQL (MariaDB) binlog CDC from a purged position', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let worker: WorkerProcess | undefined;
  const name = uniqueName('mypurge').replace(/_/g, '-');
  const queue = `q-${name}`;
  const targetDb = uniqueName('mypurge_target');

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await my?.end();
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  it('pauses for the operator naming the position and the retention, and applies nothing', async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    await my.query('CREATE DATABASE app; USE app; CREATE TABLE t (id int PRIMARY KEY, v text); SET GLOBAL expire_logs_days = 0.01;');
    const [[at]] = (await my.query('SHOW MASTER STATUS')) as unknown as [Array<{ File: string; Position: number }>];
    await my.query("INSERT INTO app.t VALUES (1, 'lost'); FLUSH BINARY LOGS;");
    const [[now]] = (await my.query('SHOW MASTER STATUS')) as unknown as [Array<{ File: string }>];
    // MariaDB keeps a file until its transactions are checkpointed in InnoDB (about a second).
    for (let i = 0; ; i++) {
      await my.query(`PURGE BINARY LOGS TO '${now!.File}'`);
      const [logs] = (await my.query('SHOW BINARY LOGS')) as unknown as [Array<{ Log_name: string }>];
      if (!logs.some((l) => l.Log_name === at!.File)) break;
      if (i > 60) throw new Error(`${at!.File} was not purged`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // Mode cdc: the target holds the table already (loaded some other way).
    const tgt = await createDatabase('target', targetDb);
    await withClient(tgt, (c) => c.query('CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY, v text)'));
    const env = cliEnv(queue, { SRC_URL: maria.url('app'), TGT_URL: tgt });
    worker = await startWorker(env);
    const plan = writePlan(`
name: ${name}
mode: cdc
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
cdc: { startPosition: "${at!.File}:${at!.Position}" }
`);
    const started = await dbferry(['start', plan], env);
    expect(started.code).toBe(0);
    const paused = await untilStatus(name, (s) => s.phase === 'awaiting-operator', env);
    expect(paused.failure).toMatchObject({ step: 'cdc', type: 'SourceObjectMissing' });
    expect(paused.failure.message).toContain(`the binlog at ${at!.File}:${at!.Position}, where CDC must start, is no longer on the server`);
    expect(paused.failure.message).toMatch(/expire_logs_days=0\.01/);
    const rows = await withClient(tgt, (c) => c.query('SELECT count(*)::int AS n FROM app.t'));
    expect(rows.rows[0].n).toBe(0);
    const aborted = await dbferry(['abort', name], env);
    expect(aborted.code).toBe(0);
  });
});

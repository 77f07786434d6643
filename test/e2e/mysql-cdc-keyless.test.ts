import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { dropDatabase, serverUrl, uniqueName } from '../support/databases';
import { mysqlRowsAsApplicationReads, pgRowsAsApplicationReads } from '../support/mysql-compare';

jest.setTimeout(6 * 60_000);

/**
 * A table without a primary key, with duplicate rows, under binlog CDC: refused by `check`
 * unless the plan accepts matching by the whole row; then one of two identical rows deleted or
 * updated on the source is one of them on the target too, and cutover leaves it equal.
 */
describe('MySQL (MariaDB) binlog CDC of a table without a primary key', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let worker: WorkerProcess | undefined;
  const name = uniqueName('mykeyless').replace(/_/g, '-');
  const queue = `q-${name}`;
  const targetDb = uniqueName('mykeyless_target');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    my = await createConnection({ uri: maria.url(), multipleStatements: true, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, jsonStrings: true, decimalNumbers: false } as never);
    await my.query(`CREATE DATABASE app; USE app;
      CREATE TABLE log_lines (msg varchar(50), n int);
      INSERT INTO log_lines VALUES ('dup', 1), ('dup', 1), ('dup', 1), ('one', 2), (NULL, NULL), (NULL, NULL);
      CREATE TABLE items (id int PRIMARY KEY, v text);
      INSERT INTO items VALUES (1, 'a');`);
    env = cliEnv(queue, { SRC_URL: maria.url('app'), TGT_URL: serverUrl('target', targetDb) });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await my?.end();
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  const plan = (extra: string) =>
    writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
${extra}
`);

  it('is refused by check unless the plan accepts whole-row matching', async () => {
    const refused = await dbferry(['check', plan('')], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/app\.log_lines has no primary key: .*cdc\.keylessTables: whole-row/);
    const accepted = await dbferry(['check', plan('cdc: { keylessTables: whole-row }')], env);
    expect({ code: accepted.code, out: accepted.code === 0 ? '' : accepted.stdout + accepted.stderr }).toEqual({ code: 0, out: '' });
  });

  it('applies changes to one of identical rows by whole-row match, and cutover leaves the table equal', async () => {
    const started = await dbferry(['start', plan('cdc: { keylessTables: whole-row }'), '--wait', '--json'], env);
    expect({ code: started.code, out: started.code === 0 ? '' : started.stdout.slice(0, 2000) + started.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    await my.query(`USE app;
      DELETE FROM log_lines WHERE msg = 'dup' LIMIT 1;
      UPDATE log_lines SET n = 5 WHERE msg = 'dup' LIMIT 1;
      INSERT INTO log_lines VALUES ('one', 2), ('new', 3);
      DELETE FROM log_lines WHERE msg IS NULL LIMIT 1;
      UPDATE items SET v = 'b' WHERE id = 1;`);
    await untilCaughtUp(name, env, worker);
    const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
    expect({ code: cut.code, out: cut.code === 0 ? '' : cut.stdout.slice(0, 2000) + cut.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    const report = JSON.parse(cut.stdout);
    expect(report.validation.tables.map((t: { table: string; equal: boolean }) => [t.table, t.equal])).toEqual([['app.items', true], ['app.log_lines', true]]);
    for (const table of ['log_lines', 'items']) {
      expect({ table, rows: await pgRowsAsApplicationReads(serverUrl('target', targetDb), 'app', table) }).toEqual({ table, rows: await mysqlRowsAsApplicationReads(my, 'app', table) });
    }
    // The source's rows, as the changes left them: one 'dup' fewer, one of the others changed.
    expect(await mysqlRowsAsApplicationReads(my, 'app', 'log_lines')).toHaveLength(6);
  });
});

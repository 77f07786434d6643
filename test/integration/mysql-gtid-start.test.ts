import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { resolveGtidStart } from '../../activities/mysql/binlog-stream';
import { resolveMysqlEndpoint } from '../../activities/mysql/connection';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { parsePlan } from '../../plan';
import { mysqlStartKind } from '../../plan/supported';

jest.setTimeout(2 * 60_000);

/**
 * `cdc.startPosition` as a GTID set: the binlog position of the first transaction not in the
 * set, as the server's own SHOW BINLOG EVENTS places that transaction's GTID event; with no
 * transaction after the set, the binlog's end.
 */
describe('MySQL (MariaDB) CDC start at a GTID set', () => {
  let maria: MariaDbServer;
  let my: Connection;

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    await my.query('CREATE DATABASE app; USE app; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); FLUSH BINARY LOGS; INSERT INTO t VALUES (3);');
  });

  afterAll(async () => {
    await my?.end();
    await maria?.stop();
  });

  it('finds where the transaction after the set begins, in whichever binlog file', async () => {
    process.env.DBFERRY_TEST_GTID_URL = maria.url('app');
    const parsed = parsePlan({ name: 'gtid', mode: 'cdc', source: { engine: 'mysql', url: 'env:DBFERRY_TEST_GTID_URL' }, target: { engine: 'postgres', url: 'env:UNUSED' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const ep = await resolveMysqlEndpoint(parsed.plan);
    // Where the server itself has each transaction's GTID event.
    const events: Array<{ file: string; pos: number; gtid: string }> = [];
    const [logs] = (await my.query('SHOW BINARY LOGS')) as unknown as [Array<{ Log_name: string }>];
    for (const { Log_name: file } of logs) {
      const [rows] = (await my.query(`SHOW BINLOG EVENTS IN '${file}'`)) as unknown as [Array<{ Pos: number; Event_type: string; Info: string }>];
      for (const r of rows) if (r.Event_type === 'Gtid') events.push({ file, pos: Number(r.Pos), gtid: /GTID (\S+)/.exec(r.Info)![1]! });
    }
    const [[{ g }]] = (await my.query('SELECT @@gtid_binlog_pos AS g')) as unknown as [Array<{ g: string }>];
    const last = Number(/-(\d+)$/.exec(g)![1]);
    // Each transaction in turn: the one after the set starts where the server says.
    for (let n = 1; n < last; n++) {
      const next = events.find((e) => e.gtid === `0-1-${n + 1}`)!;
      expect({ n, at: await resolveGtidStart(ep, `0-1-${n}`, 424242) }).toEqual({ n, at: `mysql:${next.file}:${next.pos}` });
    }
    // Nothing after the set yet: the binlog's end (MariaDB may still append a checkpoint event,
    // no transaction: read after).
    const atEnd = await resolveGtidStart(ep, g, 424242);
    const [[status]] = (await my.query('SHOW MASTER STATUS')) as unknown as [Array<{ File: string; Position: number }>];
    expect(atEnd).toBe(`mysql:${status!.File}:${status!.Position}`);
    expect([mysqlStartKind('0-1-5'), mysqlStartKind('3E11FA47-71CA-11E1-9E33-C80AA9429562:5'), mysqlStartKind('binlog.000002:385'), mysqlStartKind('0/16B3748')]).toEqual(['gtid', 'gtid', 'file', undefined]);
  });
});

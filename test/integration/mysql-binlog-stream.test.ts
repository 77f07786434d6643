import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import type { ChangeEvent, ChangeStream } from '../../activities/engine';
import { openMysqlChangeStream } from '../../activities/mysql/binlog-stream';
import { masterPosition } from '../../activities/mysql/reader';
import { compareMysqlPositions } from '../../activities/mysql/position';
import { resolveMysqlEndpoint, type MysqlEndpoint } from '../../activities/mysql/connection';
import { mysqlEngine } from '../../activities/mysql/mysql-engine';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { oneByOne } from '../support/batches';
import { parsePlan, type SchemaModel } from '../../plan';

jest.setTimeout(2 * 60_000);

/**
 * The binlog as change events, against a real MariaDB: transactions with their changes in
 * order, an added column described before the rows that carry it, TRUNCATE, a statement that
 * changes a migrated table in another way refused with the table and the statement, and a row
 * image without every column refused rather than read as NULLs.
 */
describe('MySQL (MariaDB) binlog change stream', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let ep: MysqlEndpoint;
  let model: SchemaModel;

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    await my.query('CREATE DATABASE app; USE app; CREATE TABLE t (id int PRIMARY KEY, v varchar(20), n int); CREATE TABLE other (id int PRIMARY KEY);');
    process.env.DBFERRY_TEST_STREAM_URL = maria.url('app');
    const parsed = parsePlan({ name: 'stream', mode: 'cdc', source: { engine: 'mysql', url: 'env:DBFERRY_TEST_STREAM_URL' }, target: { engine: 'postgres', url: 'env:UNUSED' }, tables: { include: ['app.t'] } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    ep = await resolveMysqlEndpoint(parsed.plan);
    model = await (await mysqlEngine(parsed.plan)).introspect();
  });

  afterAll(async () => {
    await my?.end();
    await maria?.stop();
  });

  /** Reads events until `until` says stop (or the stream fails: then the failure). */
  async function read(stream: ChangeStream, until: (e: ChangeEvent, all: ChangeEvent[]) => boolean): Promise<ChangeEvent[]> {
    const out: ChangeEvent[] = [];
    for await (const e of oneByOne(stream)) {
      out.push(e);
      if (until(e, out)) break;
    }
    return out;
  }

  const here = async () => {
    const c = await createConnection({ uri: maria.url('app') });
    try {
      return await masterPosition(c);
    } finally {
      await c.end();
    }
  };
  const text = (v: Buffer | null | symbol | undefined) => (v instanceof Buffer ? v.toString() : v);

  it('sends transactions, an added column and truncates in order; other tables only as idle reports', async () => {
    const stream = await openMysqlChangeStream(ep, { from: await here(), model, serverId: 4001 });
    try {
      await my.query("USE app; START TRANSACTION; INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2); UPDATE t SET v = 'c' WHERE id = 1; COMMIT; INSERT INTO other VALUES (1);");
      await my.query("ALTER TABLE t ADD COLUMN extra varchar(5) DEFAULT 'x'; INSERT INTO t VALUES (3, 'd', 3, 'yy'); DELETE FROM t WHERE id = 2; TRUNCATE TABLE t;");
      const all = await read(stream, (e) => e.kind === 'truncate');
      const events = all.filter((e) => e.kind !== 'idle');
      const kinds = events.map((e) => (e.kind === 'change' ? `${e.change.kind}` : e.kind));
      expect(kinds).toEqual(['relation', 'begin', 'insert', 'insert', 'update', 'commit', 'relation', 'begin', 'insert', 'commit', 'begin', 'delete', 'commit', 'begin', 'truncate']);
      const relations = events.filter((e): e is Extract<ChangeEvent, { kind: 'relation' }> => e.kind === 'relation');
      expect(relations[1]!.relation.columns.map((c) => [c.name, c.type, c.storedDefault ?? null])).toEqual([
        ['id', 'integer', null], ['v', 'character varying(20)', null], ['n', 'integer', null], ['extra', 'character varying(5)', "'x'::character varying(5)"],
      ]);
      const update = events.find((e) => e.kind === 'change' && e.change.kind === 'update') as Extract<ChangeEvent, { kind: 'change' }>;
      expect(update.change.kind === 'update' && [update.change.old?.tuple.map(text), update.change.new.map(text)]).toEqual([['1', 'a', '1'], ['1', 'c', '1']]);
      // Transactions are ordered, each begin and commit at one commit position.
      const commits = events.filter((e): e is Extract<ChangeEvent, { kind: 'commit' }> => e.kind === 'commit');
      expect(new Set(commits.map((c) => c.commitPosition)).size).toBe(3);
      // The other table's insert only moved the position on: an idle report after the first
      // commit, in stream order, at or past where that commit ended.
      const firstCommit = all.findIndex((e) => e.kind === 'commit');
      const idle = all.slice(firstCommit).find((e): e is Extract<ChangeEvent, { kind: 'idle' }> => e.kind === 'idle');
      expect(idle).toBeDefined();
      expect(compareMysqlPositions(idle!.position, commits[0]!.endPosition)).toBeGreaterThanOrEqual(0);
    } finally {
      await stream.close();
    }
  });

  it('hears the server while the binlog is idle (heartbeats with the position)', async () => {
    const at = await here();
    const stream = await openMysqlChangeStream(ep, { from: at, model, serverId: 4004 });
    const timer = setTimeout(() => void stream.close(), 12_000);
    try {
      // Nothing is written: only a heartbeat (every 5 s) can report a position.
      const events = await read(stream, (e) => e.kind === 'idle').catch(() => []);
      expect(events.at(-1)).toEqual({ kind: 'idle', position: at });
    } finally {
      clearTimeout(timer);
      await stream.close();
    }
  });

  it('refuses a change to a migrated table other than ADD COLUMN, naming the table and the statement', async () => {
    const stream = await openMysqlChangeStream(ep, { from: await here(), model, serverId: 4002 });
    try {
      await my.query('ALTER TABLE app.t MODIFY n bigint');
      await expect(read(stream, () => false)).rejects.toMatchObject({ type: 'SchemaChanged', message: expect.stringMatching(/source table app\.t changed while CDC ran: an ALTER TABLE other than ADD COLUMN: ALTER TABLE app\.t MODIFY n bigint/) });
    } finally {
      await stream.close();
    }
  });

  it('refuses a row image without every column instead of reading NULLs', async () => {
    await my.query("USE app; INSERT INTO t (id, v, n) VALUES (10, 'full', 10)");
    const stream = await openMysqlChangeStream(ep, { from: await here(), model: { ...model, tables: model.tables.map((t) => ({ ...t, columns: t.columns })) }, serverId: 4003 });
    try {
      await my.query("SET SESSION binlog_row_image = 'MINIMAL'; UPDATE app.t SET v = 'minimal' WHERE id = 10; SET SESSION binlog_row_image = 'FULL';");
      await expect(read(stream, () => false)).rejects.toMatchObject({ type: 'SourceCannotSend', message: expect.stringMatching(/without every column in its row image/) });
    } finally {
      await stream.close();
    }
  });
});

import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { formatReport } from '../../client/render';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(10 * 60_000);

/** More tables than one load task holds (100): the load runs as two tasks, one after the other. */
const ACCOUNTS = 130;
const TOTAL = ACCOUNTS * 1000;
/** Rows of a table cut into key ranges (`load.chunkRows`), each range a task of its own. */
const ENTRIES = 20_000;
const ENTRIES_TOTAL = ENTRIES * 10;

/**
 * One read point for every table of a MySQL source written during the load. A writer moves
 * money between accounts, one table per account, in transactions, so the sum over all tables
 * never changes on the source. The tables are loaded by two tasks one after the other
 * (`load.parallel: 1`); read in snapshots of their own, the second task's tables would hold
 * transfers the first task's do not, and the sum on the target would be off.
 */
describe('MySQL (MariaDB) → PostgreSQL: the load read point', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let workers: WorkerProcess[] = [];
  const queue = `q-${uniqueName('myrp').replace(/_/g, '-')}`;

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    const ddl = Array.from({ length: ACCOUNTS }, (_, i) => `CREATE TABLE bank.acct_${i} (id int PRIMARY KEY, balance bigint NOT NULL); INSERT INTO bank.acct_${i} VALUES (1, 1000);`);
    await my.query(`CREATE DATABASE bank; USE bank; ${ddl.join('\n')}
      CREATE TABLE bank.entries (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL);
      INSERT INTO bank.entries (balance) SELECT 10 FROM seq_1_to_${ENTRIES};
      ANALYZE TABLE bank.entries;`);
    // A user with SELECT only (no RELOAD), as on managed services that refuse the global read lock.
    await my.query("CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'reader-pw'; GRANT SELECT ON bank.* TO 'reader'@'127.0.0.1';");
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await my?.end();
    await maria?.stop();
  });

  /** Moves money between random accounts until stopped; returns how many transfers committed. */
  function startTransfers(): { stop: () => Promise<number> } {
    let running = true;
    let committed = 0;
    const done = (async () => {
      const c = await createConnection({ uri: maria.url('bank') });
      try {
        while (running) {
          const a = Math.floor(Math.random() * ACCOUNTS);
          const b = (a + 1 + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS;
          const amount = 1 + Math.floor(Math.random() * 50);
          await c.query('START TRANSACTION');
          await c.query(`UPDATE acct_${a} SET balance = balance - ? WHERE id = 1`, [amount]);
          await c.query(`UPDATE acct_${b} SET balance = balance + ? WHERE id = 1`, [amount]);
          // And between the first and the last range of the chunked table.
          await c.query('UPDATE entries SET balance = balance - ? WHERE id = ?', [amount, 1 + Math.floor(Math.random() * 1000)]);
          await c.query('UPDATE entries SET balance = balance + ? WHERE id = ?', [amount, ENTRIES - Math.floor(Math.random() * 1000)]);
          await c.query('COMMIT');
          committed++;
        }
      } finally {
        await c.end();
      }
      return committed;
    })();
    return {
      stop: async () => {
        running = false;
        return done;
      },
    };
  }

  async function migrate(sourceUrl: string, opts: { workers?: number; parallel?: number } = {}) {
    const name = uniqueName('myrp').replace(/_/g, '-');
    const db = uniqueName('myrp_target');
    const env = cliEnv(queue, { SRC_URL: sourceUrl, TGT_URL: serverUrl('target', db) });
    const plan = writePlan(`
name: ${name}
mode: full-load
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: ${opts.parallel ?? 1}, chunkRows: 4000 }
`);
    workers = await Promise.all(Array.from({ length: opts.workers ?? 1 }, () => startWorker(env)));
    const transfers = startTransfers();
    try {
      const run = await dbferry(['start', plan, '--wait', '--json'], env);
      const moved = await transfers.stop();
      expect({ code: run.code, failure: run.code === 0 ? undefined : failureOf(run) }).toEqual({ code: 0, failure: undefined });
      const report = JSON.parse(run.stdout);
      const sum = await withClient(serverUrl('target', db), async (c) => {
        const parts = Array.from({ length: ACCOUNTS }, (_, i) => `SELECT balance FROM bank.acct_${i}`).join(' UNION ALL ');
        const sums = (
          await c.query(
            `SELECT sum(balance)::bigint AS total, (SELECT sum(balance) FROM bank.entries)::bigint AS entries,
                    (SELECT count(*)::int FROM _dbferry.table_loads WHERE table_key = 'bank.entries') AS chunks,
                    (SELECT count(DISTINCT snapshot)::int FROM _dbferry.table_loads) AS snapshots FROM (${parts}) x`,
          )
        ).rows[0] as { total: string; entries: string; chunks: number; snapshots: number };
        // Which workers loaded the tables, and on whose queue the read point was held.
        const where = (await c.query(`SELECT array(SELECT DISTINCT worker FROM _dbferry.table_loads) AS loaders, (SELECT worker_queue FROM _dbferry.snapshots ORDER BY generation LIMIT 1) AS holder`)).rows[0] as { loaders: string[]; holder: string | null };
        return { ...sums, ...where };
      });
      return { report, sum, moved, shown: formatReport(report) };
    } finally {
      await transfers.stop();
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
      workers = [];
      await dropDatabase('target', db);
    }
  }

  it('loads every table in one read point while the source is written: the money adds up on the target', async () => {
    const { report, sum, moved, shown } = await migrate(maria.url('bank'));
    expect(moved).toBeGreaterThan(0);
    // Two tasks, one snapshot.
    expect({ total: sum.total, entries: sum.entries, snapshots: sum.snapshots }).toEqual({ total: String(TOTAL), entries: String(ENTRIES_TOTAL), snapshots: 1 });
    // The chunked table was loaded as key ranges (each its own task), all in the one read point.
    expect(sum.chunks).toBeGreaterThan(2);
    expect(report.validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
    expect(report.load.readPoint).toMatch(/^one read point for every table at binlog\.\d+:\d+ \(GTID 0-1-\d+\) \(1 snapshot opened under FLUSH TABLES WITH READ LOCK; source commits paused \d+ ms\)$/);
    expect(shown).toMatch(/read point: one read point for every table/);
  });

  it('runs the loaders on the worker that holds the read point when several workers poll', async () => {
    const { sum, moved } = await migrate(maria.url('bank'), { workers: 2, parallel: 2 });
    expect(moved).toBeGreaterThan(0);
    expect({ total: sum.total, entries: sum.entries, snapshots: sum.snapshots }).toEqual({ total: String(TOTAL), entries: String(ENTRIES_TOTAL), snapshots: 1 });
    // Every task ran beside the holder, on its worker's own queue (`<queue>@<pid>@<host>/<tag>`).
    expect(sum.loaders).toHaveLength(1);
    expect(sum.holder?.startsWith(`${queue}@${sum.loaders[0]}/`)).toBe(true);
  });

  it('says so when the source refuses the lock (no RELOAD): each table in its own snapshot', async () => {
    const url = maria.url('bank').replace(/\/\/[^@]*@/, '//reader:reader-pw@');
    const { report, sum } = await migrate(url);
    // Two tasks, each in its own snapshot; the chunked table whole (no key ranges without a shared read point).
    expect({ snapshots: sum.snapshots, chunks: sum.chunks }).toEqual({ snapshots: 2, chunks: 1 });
    expect(report.validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
    expect(report.load.readPoint).toMatch(/^each load task read in its own snapshot from binlog\.\d+:\d+ on \(the source refused FLUSH TABLES WITH READ LOCK: grant RELOAD for one read point\)/);
  });
});

/** What a failed `start --wait --json` says went wrong (its report's failure), else its output. */
function failureOf(run: { stdout: string; stderr: string }): unknown {
  try {
    const out = JSON.parse(run.stdout);
    return out.failure ?? out.status?.failure ?? out;
  } catch {
    return run.stdout.slice(0, 2000) + run.stderr.slice(-2000);
  }
}

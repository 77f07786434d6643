import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { mysqlRowsAsApplicationReads, pgRowsAsApplicationReads } from '../support/mysql-compare';
import { waitFor } from '../support/wait';

/** Waits with the worker's last words on a timeout, and says how long it took. */
const waitUntil = (what: string, check: () => Promise<boolean>) => waitFor(what, check, { timeoutMs: 240_000, explain: () => workerOutput(), log: 'mysql cdc test' });

jest.setTimeout(15 * 60_000);

const CUSTOMERS = 3_000;
const ORDERS = 150_000;
const TABLES = ['customers', 'orders', 'we`ird tbl'];

/** The running worker's last output, for failure messages. */
let workerOutput = () => '';

/**
 * Full load + binlog CDC from MariaDB with an application writing all the while: inserts,
 * updates of every edge-typed column, deletes whose cascades only InnoDB knows (they are not in
 * the binlog), multi-row transactions, one transaction of 100k rows and a column added on the
 * source. The worker is SIGKILLed during the load and again during CDC, and the MariaDB server
 * restarts during CDC. After cutover, every table equals its source by the test's own
 * fingerprint (each side read as an application reads it) and by dbferry's validation.
 */
describe('MySQL (MariaDB) → PostgreSQL: full load + binlog CDC and cutover', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let worker: WorkerProcess | undefined;
  const name = uniqueName('mycdc').replace(/_/g, '-');
  const queue = `q-${name}`;
  const targetDb = uniqueName('mycdc_target');
  const tgt = () => serverUrl('target', targetDb);
  let env: NodeJS.ProcessEnv;
  workerOutput = () => worker?.output().slice(-4000) ?? '(no worker)';

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), timeZone: '+05:30' });
    my = await createConnection({ uri: maria.url(), multipleStatements: true, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, jsonStrings: true, decimalNumbers: false } as never);
    await my.query(`SET GLOBAL sql_mode = ''; SET sql_mode = ''; CREATE DATABASE shop CHARACTER SET utf8mb4; USE shop;
      CREATE TABLE customers (
        id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name varchar(100) NOT NULL,
        balance decimal(30,6) NOT NULL DEFAULT 0,
        big bigint unsigned,
        tiny tinyint,
        ratio double,
        born date,
        created datetime(6),
        seen timestamp(6) NULL DEFAULT NULL,
        active tinyint(1) NOT NULL DEFAULT 1,
        kind enum('retail','wholesale','it''s') DEFAULT 'retail',
        perms set('read','write','admin'),
        doc json,
        raw varbinary(16),
        flags bit(10),
        span time(6),
        updated_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
      ) ENGINE=InnoDB;
      CREATE TABLE orders (
        id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
        customer_id int unsigned NOT NULL,
        referrer_id int unsigned NULL,
        amount decimal(12,2) NOT NULL,
        note text,
        FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE,
        FOREIGN KEY (referrer_id) REFERENCES customers (id) ON DELETE SET NULL
      ) ENGINE=InnoDB;
      CREATE TABLE \`we\`\`ird tbl\` (\`Key\` varchar(20) PRIMARY KEY, \`select\` int, \`ünï\` text) ENGINE=InnoDB;
      INSERT INTO customers (name, balance, big, created, doc) SELECT CONCAT('c', seq), seq / 7, seq * 1000, '2020-01-01 00:00:00.000001', '{"n": 1}' FROM seq_1_to_${CUSTOMERS};
      INSERT INTO orders (customer_id, referrer_id, amount, note) SELECT 1 + seq % ${CUSTOMERS}, IF(seq % 5 = 0, 1 + (seq * 7) % ${CUSTOMERS}, NULL), seq % 1000, 'initial' FROM seq_1_to_${ORDERS};
      INSERT INTO \`we\`\`ird tbl\` VALUES ('a', 1, 'ä'), ('b', 2, '🙂');
      ANALYZE TABLE customers, orders;`);
    env = cliEnv(queue, { SRC_URL: maria.url('shop'), TGT_URL: tgt() });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await my?.end().catch(() => undefined);
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  it('ends with every table equal after kills, a server restart, a big transaction and an added column', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 2, chunkRows: 15000 }
`);
    const writer = startWriter(maria);
    const run = dbferry(['start', plan, '--wait', '--json'], env);
    const restartWorker = async () => {
      await worker!.stop('SIGKILL');
      worker = await startWorker(env);
    };
    const applied = async () => {
      const r = await withClient(tgt(), (c) => c.query('SELECT coalesce(sum(changes), 0)::int AS n FROM _dbferry.cdc_progress')).catch(() => undefined);
      return r?.rows[0]?.n ?? 0;
    };
    try {
      // 1. SIGKILL mid-load, once a chunk has committed.
      await waitUntil('a committed chunk', async () => {
        const r = await withClient(tgt(), (c) => c.query('SELECT count(*)::int AS n FROM _dbferry.table_loads')).catch(() => undefined);
        return (r?.rows[0]?.n ?? 0) >= 1;
      });
      await restartWorker();

      // 2. CDC applies the writer's changes; start --wait returns once it has caught up.
      await waitUntil('CDC applying changes', async () => (await applied()) > 200);
      const started = await run;
      expect({ code: started.code, out: started.code === 0 ? '' : started.stdout.slice(0, 3000) + started.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
      expect(JSON.parse(started.stdout)).toMatchObject({ phase: 'cdc', lag: { caughtUp: true } });

      // 3. SIGKILL during CDC.
      await restartWorker();
      const afterKill = await applied();
      await waitUntil('CDC resumed after the kill', async () => (await applied()) > afterKill + 200);

      // 4. The source restarts (its binlog rotates): the applier recovers by itself.
      await writer.pause();
      await maria.restart();
      writer.resume();
      const afterRestart = await applied();
      await waitUntil('CDC resumed after the source restart', async () => (await applied()) > afterRestart + 200);

      // 5. One transaction of 100k rows, and a column added on the source, then written.
      await my.end().catch(() => undefined);
      my = await createConnection({ uri: maria.url('shop'), multipleStatements: true, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, jsonStrings: true, decimalNumbers: false } as never);
      await my.query(`INSERT INTO orders (customer_id, amount, note) SELECT 101 + seq % 200, 1, 'bulk' FROM seq_1_to_100000`);
      await my.query('ALTER TABLE customers ADD COLUMN tier varchar(10) NULL');
      writer.useTier();
      await waitUntil('the added column and the bulk rows on the target', async () => {
        const r = await withClient(tgt(), (c) =>
          c.query("SELECT (SELECT count(*)::int FROM shop.customers WHERE tier = 'gold') AS gold, (SELECT count(*)::int FROM shop.orders WHERE note = 'bulk') AS bulk"),
        ).catch(() => undefined);
        return (r?.rows[0]?.gold ?? 0) > 0 && r?.rows[0]?.bulk === 100_000;
      });

      // 6. Cutover is refused while the application writes; accepted once it stopped.
      const early = await dbferry(['cutover', name], env);
      expect({ code: early.code, err: early.stderr }).toEqual({ code: 5, err: expect.stringMatching(/cutover refused: writes are still arriving/) });
      const committed = await writer.stop();
      expect(committed.transactions).toBeGreaterThan(300);
      expect(committed.cascadingDeletes).toBeGreaterThan(5);
      const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
      expect({ code: cut.code, err: cut.code === 0 ? '' : cut.stdout.slice(0, 3000) + cut.stderr.slice(-2000) }).toEqual({ code: 0, err: '' });
      const report = JSON.parse(cut.stdout);
      expect(report.status.phase).toBe('completed');
      expect(report.validation.tables.map((t: { table: string; equal: boolean }) => [t.table, t.equal])).toEqual(TABLES.map((t) => [`shop.${t}`, true]).sort());
      const customers = report.status.tables.find((t: { name: string }) => t.name === 'shop.customers');
      expect(customers).toMatchObject({ inserts: expect.any(Number), updates: expect.any(Number), deletes: expect.any(Number) });
      expect(Math.min(customers.inserts, customers.updates, customers.deletes)).toBeGreaterThan(0);
    } finally {
      await writer.stop();
    }

    // The test's own fingerprint: each side as an application reads it.
    for (const table of TABLES) {
      const source = await mysqlRowsAsApplicationReads(my, 'shop', table);
      const target = await pgRowsAsApplicationReads(tgt(), 'shop', table);
      expect({ table, rows: target.length }).toEqual({ table, rows: source.length });
      const [inSource, inTarget] = [new Set(source), new Set(target)];
      const onlySource = source.filter((r) => !inTarget.has(r)).slice(0, 3);
      const onlyTarget = target.filter((r) => !inSource.has(r)).slice(0, 3);
      expect({ table, onlySource, onlyTarget }).toEqual({ table, onlySource: [], onlyTarget: [] });
    }
    // Edge values exact on the target, as the writer wrote them after the load.
    const edge = await withClient(tgt(), (c) =>
      c.query(`SELECT big::text, created::text, born, doc::text, name FROM shop.customers WHERE name = 'edge 🙂' ORDER BY id DESC LIMIT 1`),
    );
    expect(edge.rows[0]).toEqual({ big: '18446744073709551615', created: '2024-02-29 23:59:59.999999', born: null, doc: '{"n": 123456789012345678901234567890}', name: 'edge 🙂' });
    // Identities hand out values past the source's maximum.
    const [[max]] = (await my.query('SELECT (SELECT MAX(id) FROM customers) AS c, (SELECT MAX(id) FROM orders) AS o')) as unknown as [Array<{ c: string; o: string }>];
    const next = await withClient(tgt(), (c) =>
      c.query(`SELECT nextval(pg_get_serial_sequence('shop.customers', 'id'))::text AS c, nextval(pg_get_serial_sequence('shop.orders', 'id'))::text AS o`),
    );
    expect(BigInt(next.rows[0].c)).toBeGreaterThan(BigInt(max!.c));
    expect(BigInt(next.rows[0].o)).toBeGreaterThan(BigInt(max!.o));
  });
});

interface WriterCounts {
  transactions: number;
  cascadingDeletes: number;
}

/**
 * The application: random transactions on the source until stopped. Reconnects after the server
 * restart (pause() waits for the current transaction and holds the next).
 */
function startWriter(maria: MariaDbServer) {
  let running = true;
  let paused: Promise<void> | undefined;
  let release = () => {};
  let idle = () => {};
  let tier = false;
  const counts: WriterCounts = { transactions: 0, cascadingDeletes: 0 };
  const rand = (n: number) => Math.floor(Math.random() * n);
  const done = (async () => {
    let c: Connection | undefined;
    while (running) {
      if (paused) {
        idle();
        await paused;
        await c?.end().catch(() => undefined);
        c = undefined;
        continue;
      }
      try {
        c ??= await createConnection({ uri: maria.url('shop') });
        await c.query("SET time_zone = '+00:00', sql_mode = ''");
        await c.query('START TRANSACTION');
        const op = rand(10);
        if (op < 3) {
          // A new customer with edge values, and orders for it in the same transaction.
          const [r] = await c.query(
            `INSERT INTO customers (name, balance, big, tiny, ratio, born, created, seen, active, kind, perms, doc, raw, flags, span${tier ? ', tier' : ''})
             VALUES ('edge 🙂', '123456789012345678901234.123456', 18446744073709551615, -128, 0.1, '0000-00-00', '2024-02-29 23:59:59.999999',
                     '2038-01-19 03:14:07.999999', 0, 'it''s', 'read,admin', '{"n": 123456789012345678901234567890}', UNHEX('00FF7F'), b'1010101010',
                     '-838:59:59.000000'${tier ? ", 'gold'" : ''})`,
          );
          const id = (r as { insertId: number }).insertId;
          await c.query('INSERT INTO orders (customer_id, referrer_id, amount, note) VALUES (?, ?, 9.99, ?), (?, NULL, 0.01, NULL)', [id, 1 + rand(100), 'line\ttab\nnewline \\ backslash', id]);
        } else if (op < 6) {
          // Every column of a customer changes.
          await c.query(
            `UPDATE customers SET name = CONCAT('u', ?), balance = balance + 0.000001, big = ?, tiny = ?, ratio = ?, born = '1999-12-31', created = NOW(6),
                    seen = NOW(6), active = 1 - active, kind = 'wholesale', perms = 'write', doc = JSON_OBJECT('k', ?, 'x', 1.5e300), raw = UNHEX(MD5(?)),
                    flags = b'0000000001', span = '838:59:59.999999'${tier ? ", tier = 'gold'" : ''}
              WHERE id = ?`,
            [rand(1e9), String(2n ** 63n + BigInt(rand(1e9))), rand(127), Math.random() * 1e10, rand(1e6), rand(1e6), 1 + rand(3000)],
          );
        } else if (op < 7) {
          // A customer goes: InnoDB deletes its orders and clears referrers; the binlog has only the customer.
          const [r] = await c.query('DELETE FROM customers WHERE id = (SELECT id FROM (SELECT id FROM customers WHERE id > 1000 ORDER BY RAND() LIMIT 1) x)');
          if ((r as { affectedRows: number }).affectedRows > 0) counts.cascadingDeletes++;
        } else if (op < 9) {
          // Several rows in one transaction, across tables.
          await c.query('UPDATE orders SET amount = amount + 1, note = ? WHERE customer_id = ?', [`batch ${rand(1e6)}`, 1 + rand(100)]);
          await c.query('DELETE FROM orders WHERE id = ?', [1 + rand(150_000)]);
          await c.query("UPDATE `we``ird tbl` SET `select` = `select` + 1, `ünï` = CONCAT(`ünï`, 'x') WHERE `Key` = 'a'");
        } else {
          await c.query('INSERT INTO `we``ird tbl` VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `select` = VALUES(`select`)', [`k${rand(500)}`, rand(1000), 'é\'"`']);
        }
        await c.query('COMMIT');
        counts.transactions++;
        // An application's pace (about 150 transactions a second), not a stress test: the
        // applier shares two cores with this writer and both servers.
        await new Promise((r) => setTimeout(r, 5));
      } catch {
        // The server restarting: reconnect.
        await c?.end().catch(() => undefined);
        c = undefined;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await c?.end().catch(() => undefined);
  })();
  return {
    useTier: () => (tier = true),
    pause: async () => {
      const stopped = new Promise<void>((r) => (idle = r));
      paused = new Promise<void>((r) => (release = r));
      await stopped;
    },
    resume: () => {
      paused = undefined;
      release();
    },
    stop: async (): Promise<WriterCounts> => {
      running = false;
      if (paused) {
        paused = undefined;
        release();
      }
      await done;
      return counts;
    },
  };
}

import type { Client } from 'pg';
import { Client as PgClient } from 'pg';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { waitFor } from '../support/wait';

jest.setTimeout(10 * 60_000);

const ITEMS = 20_000;

/**
 * Large transactions applied while they run (pgoutput streaming, PostgreSQL 14+). The source
 * database streams any transaction above 64 kB (logical_decoding_work_mem), so every large
 * transaction below reaches the applier in pieces before its commit: with small transactions
 * committed between the pieces, rolled-back subtransactions (nested, and one whose rows a later
 * transaction reuses), a transaction that rolls back whole, a TRUNCATE, a table without a
 * primary key, a worker killed while one is half applied, and a column added inside one (CDC
 * then starts again without streaming, as it does for a transaction with more than 1,000
 * subtransactions and for more than 8 large transactions at once). After cutover every table
 * must equal the source, as an application reads it.
 */
describe('CDC applies large transactions while they run', () => {
  const sourceDb = uniqueName('stream_src');
  const targetDb = uniqueName('stream_tgt');
  const name = uniqueName('stream').replace(/_/g, '-');
  const queue = `q-${name}`;
  let sourceUrl: string;
  let targetUrl: string;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    sourceUrl = await createDatabase('source', sourceDb);
    targetUrl = await createDatabase('target', targetDb);
    await withClient(serverUrl('source'), (c) => c.query(`ALTER DATABASE ${sourceDb} SET logical_decoding_work_mem = '64kB'`));
    await withClient(sourceUrl, (c) =>
      c.query(`
        CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
        INSERT INTO items SELECT g, 'item ' || g, 0 FROM generate_series(1, ${ITEMS}) g;
        CREATE TABLE "Log Lines" (line text, at int);
        ALTER TABLE "Log Lines" REPLICA IDENTITY FULL;
        INSERT INTO "Log Lines" SELECT 'line ' || g, g FROM generate_series(1, 100) g;
        INSERT INTO "Log Lines" VALUES ('dup', 100000), ('dup', 100000), ('dup', 100000);
        CREATE TABLE scratch (k int PRIMARY KEY, v text);
        INSERT INTO scratch SELECT g, 'old' FROM generate_series(1, 100) g;`),
    );
    worker = await startWorker(cliEnv(queue, { SRC_URL: sourceUrl, TGT_URL: targetUrl }));
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await dropDatabase('source', sourceDb);
    await dropDatabase('target', targetDb);
  });

  /** Transactions the slot streamed so far (pg_stat_replication_slots, PostgreSQL 14+). */
  const slotStats = () =>
    withClient(sourceUrl, async (c) => {
      const r = await c.query<{ streamed: number }>(
        `SELECT coalesce(sum(stream_txns), 0)::int AS streamed
           FROM pg_stat_replication_slots s JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()`,
      );
      return r.rows[0]!;
    });

  it('ends with every table equal after large transactions with subtransactions, rollbacks and small transactions between their pieces', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
`);
    const env = cliEnv(queue);
    const started = await dbferry(['start', plan], env);
    expect({ code: started.code, stderr: started.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
    await untilCaughtUp(name, env, worker);

    const big = new PgClient({ connectionString: sourceUrl });
    const small = new PgClient({ connectionString: sourceUrl });
    await big.connect();
    await small.connect();
    try {
      // 1. A large transaction, with small ones committing between its pieces.
      await big.query('BEGIN');
      await big.query(`INSERT INTO items SELECT g, 'big ' || g, 1 FROM generate_series(${ITEMS + 1}, ${ITEMS + 5000}) g`);
      await waitFor('the first piece applied on the target', async () => (await applyConnections()) > 0, { timeoutMs: 60_000 });
      // Status says so while it is not committed yet.
      await waitFor('status showing the large transaction', async () => /applying 1 large transaction while it runs: [1-9]\d* changes so far/.test((await dbferry(['status', name], env)).stdout), {
        timeoutMs: 60_000,
      });
      // The worker dies with part of it applied (uncommitted) on the target: the next attempt gets it whole again.
      await worker!.stop('SIGKILL');
      worker = await startWorker(cliEnv(queue, { SRC_URL: sourceUrl, TGT_URL: targetUrl }));
      await small.query(`UPDATE items SET v = 'small first', n = n + 1 WHERE id = 7`);
      await small.query(`INSERT INTO items VALUES (${ITEMS + 100_000}, 'small insert', 9)`);
      // The large transaction updates a row after a small transaction committed a change to it.
      await big.query(`UPDATE items SET v = v || ' then big', n = n + 10 WHERE id BETWEEN 1 AND 3000`);
      await big.query(`DELETE FROM items WHERE id BETWEEN 15001 AND 16000`);
      // A rolled-back subtransaction, and nested ones.
      await big.query('SAVEPOINT a');
      await big.query(`INSERT INTO items SELECT g, 'rolled back', 2 FROM generate_series(${ITEMS + 10_001}, ${ITEMS + 12_000}) g`);
      await big.query(`UPDATE items SET v = 'rolled back' WHERE id BETWEEN 4001 AND 6000`);
      await big.query('ROLLBACK TO SAVEPOINT a');
      await big.query('SAVEPOINT b');
      await big.query(`UPDATE items SET n = n + 100 WHERE id BETWEEN 6001 AND 7000`);
      await big.query('SAVEPOINT c');
      await big.query(`INSERT INTO "Log Lines" SELECT 'nested ' || g, g FROM generate_series(1, 2000) g`);
      await big.query('ROLLBACK TO SAVEPOINT c');
      await big.query('RELEASE SAVEPOINT b');
      await big.query(`DELETE FROM "Log Lines" WHERE at <= 10`);
      await big.query(`INSERT INTO "Log Lines" SELECT 'big ' || g, g FROM generate_series(1, 1500) g`);
      await small.query(`UPDATE items SET v = 'small second' WHERE id = 19999`);
      await big.query('COMMIT');
      // The rows the rolled-back subtransaction had inserted, now inserted for good by another.
      await small.query(`INSERT INTO items SELECT g, 'reused', 3 FROM generate_series(${ITEMS + 10_001}, ${ITEMS + 10_500}) g`);

      // 2. A large transaction that rolls back whole.
      await big.query('BEGIN');
      await big.query(`UPDATE items SET v = 'never' WHERE id BETWEEN 1 AND 8000`);
      await small.query(`UPDATE items SET v = 'small third' WHERE id = 12345`);
      await big.query('ROLLBACK');

      // 3. TRUNCATE and reload inside a large transaction.
      await big.query('BEGIN');
      await big.query('TRUNCATE scratch');
      await big.query(`INSERT INTO scratch SELECT g, 'new ' || g FROM generate_series(1, 4000) g`);
      await big.query('COMMIT');
      await waitFor('the large transactions applied', async () => (await targetCount('scratch')) === 4000, { timeoutMs: 120_000, explain: () => worker!.output().slice(-3000) });
      const stats = await slotStats();
      // (Not "spilled none": after the worker was killed, the source decodes the transaction again
      // from its start, and spills what it had streamed before, as PostgreSQL does on any restart.)
      expect(stats.streamed).toBeGreaterThanOrEqual(3);

      // 4. Identical rows of a table without a key: the large transaction deletes one, and a small
      // transaction deletes another before it commits. On the target the small one must take a
      // row the large one does not hold (waiting for it would wait for the applier itself).
      const pieces = (await slotStats()).streamed;
      await big.query('BEGIN');
      await big.query(`UPDATE items SET n = n + 1 WHERE id BETWEEN 1 AND 3000`);
      await big.query(`DELETE FROM "Log Lines" WHERE ctid = (SELECT ctid FROM "Log Lines" WHERE line = 'dup' LIMIT 1)`);
      await big.query(`UPDATE items SET n = n + 1 WHERE id BETWEEN 3001 AND 6000`);
      await waitFor('the large transaction streamed', async () => (await slotStats()).streamed > pieces, { timeoutMs: 60_000 });
      await small.query(`DELETE FROM "Log Lines" WHERE ctid = (SELECT ctid FROM "Log Lines" WHERE line = 'dup' LIMIT 1 FOR UPDATE SKIP LOCKED)`);
      await big.query('COMMIT');
      await waitFor('both deletes applied', async () => (await targetCount(`"Log Lines" WHERE line = 'dup'`)) === 1, { timeoutMs: 120_000, explain: () => worker!.output().slice(-3000) });
      // Without giving up streaming (an apply connection that waited for the large transaction's lock would).
      expect(worker!.output()).not.toMatch(/CDC starts again without applying large transactions/);

      // 5. A column added inside a large transaction, while it streams: the applier cannot add it
      // while that transaction's rows are locked on the target, and starts again without streaming.
      await big.query('BEGIN');
      await big.query(`UPDATE items SET n = n + 1000 WHERE id BETWEEN 8001 AND 11000`);
      await big.query('ALTER TABLE items ADD COLUMN tag text');
      await big.query(`UPDATE items SET tag = 'tagged ' || id WHERE id BETWEEN 11001 AND 14000`);
      await big.query('COMMIT');
      await small.query(`UPDATE items SET tag = 'small tag' WHERE id = 1`);
      await waitFor('the added column applied', async () => (await targetCount("items WHERE tag = 'small tag'").catch(() => 0)) === 1, {
        timeoutMs: 180_000,
        explain: () => worker!.output().slice(-3000),
      });
      expect(worker!.output()).toMatch(/CDC starts again without applying large transactions while they run/);
    } finally {
      await big.end().catch(() => undefined);
      await small.end().catch(() => undefined);
    }

    await untilCaughtUp(name, env, worker);
    const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
    expect({ code: cut.code, stderr: cut.stderr.slice(-2000) }).toEqual({ code: 0, stderr: expect.any(String) });
    const report = JSON.parse(cut.stdout);
    expect(report.validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
    // The test's own comparison, independent of dbferry's validation.
    await expectSameTables(sourceUrl, targetUrl, ['public."Log Lines"', 'public.items', 'public.scratch']);
    const items = report.status.tables.find((t: { name: string }) => t.name === 'public.items');
    // Counted once, without the rolled-back ones: 5,000 + 1 + 500 inserts.
    expect(items.inserts).toBe(5501);
  });

  it('starts again without streaming a transaction with more than 1,000 subtransactions, and ends equal', async () => {
    await anotherMigration('stream_subs', async (target2Url) => {
      // A PL/pgSQL exception block per row: a subtransaction each.
      await withClient(sourceUrl, (c) =>
        c.query(`
          BEGIN;
          UPDATE items SET n = n + 1 WHERE id BETWEEN 1 AND 3000;
          DO $$ BEGIN
            FOR i IN 1..1100 LOOP
              BEGIN
                INSERT INTO items VALUES (900000 + i, 'in a subtransaction', i);
                IF i % 100 = 0 THEN RAISE EXCEPTION 'roll this one back'; END IF;
              EXCEPTION WHEN raise_exception THEN NULL;
              END;
            END LOOP;
          END $$;
          COMMIT;`),
      );
      await waitFor('the subtransactions applied', async () => (await withClient(target2Url, async (c) => (await c.query('SELECT count(*)::int AS n FROM items WHERE id > 900000')).rows[0].n)) === 1089, {
        timeoutMs: 120_000,
        explain: () => worker!.output().slice(-3000),
      });
      expect(worker!.output()).toMatch(/a large transaction has more than 1000 subtransactions: CDC starts again without applying large transactions while they run/);
    });
  });

  it('starts again without streaming when more than 8 large transactions run at once, and ends equal', async () => {
    const open: PgClient[] = [];
    await anotherMigration('stream_many', async (target3Url) => {
      // Nine transactions open at once, each far above the source's 64 kB: each is streamed
      // while it runs, and the ninth would need a ninth apply connection.
      for (let i = 0; i < 9; i++) {
        const c = new PgClient({ connectionString: sourceUrl });
        await c.connect();
        open.push(c);
        await c.query('BEGIN');
        await c.query(`INSERT INTO items SELECT g, 'concurrent ${i}', ${i} FROM generate_series(${1_000_000 + i * 10_000}, ${1_000_000 + i * 10_000 + 1_999}) g`);
      }
      await waitFor('the applier giving up streaming', async () => /more than 8 large transactions ran at once: CDC starts again without applying large transactions while they run/.test(worker!.output()), {
        timeoutMs: 120_000,
        explain: () => worker!.output().slice(-3000),
      });
      // Committed in another order than they began, one rolled back, each with a second statement.
      for (const i of [4, 0, 8, 2, 6, 1, 7, 3, 5]) {
        const c = open[i]!;
        await c.query(`UPDATE items SET n = n + 100 WHERE id BETWEEN ${1_000_000 + i * 10_000} AND ${1_000_000 + i * 10_000 + 99}`);
        await c.query(i === 3 ? 'ROLLBACK' : 'COMMIT');
      }
      await waitFor('the concurrent transactions applied', async () => (await withClient(target3Url, async (c) => (await c.query('SELECT count(*)::int AS n FROM items WHERE id >= 1000000')).rows[0].n)) === 8 * 2_000, {
        timeoutMs: 120_000,
        explain: () => worker!.output().slice(-3000),
      });
    }).finally(async () => {
      for (const c of open) await c.end().catch(() => undefined);
    });
  });

  /**
   * Another migration of the source into a fresh target database, on a restarted worker: `run`
   * gets it caught up, then cutover must find every table equal, and so must the test's own
   * comparison.
   */
  async function anotherMigration(label: string, run: (targetUrl: string) => Promise<void>): Promise<void> {
    const other = uniqueName(label).replace(/_/g, '-');
    const otherDb = uniqueName(`${label}_tgt`);
    const otherUrl = await createDatabase('target', otherDb);
    try {
      const plan = writePlan(`
name: ${other}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:OTHER_TGT_URL }
`);
      await worker!.stop('SIGKILL');
      worker = await startWorker(cliEnv(queue, { SRC_URL: sourceUrl, TGT_URL: targetUrl, OTHER_TGT_URL: otherUrl }));
      const env = cliEnv(queue);
      const started = await dbferry(['start', plan], env);
      expect({ code: started.code, stderr: started.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
      await untilCaughtUp(other, env, worker);
      await run(otherUrl);
      await untilCaughtUp(other, env, worker);
      const cut = await dbferry(['cutover', other, '--wait', '--json'], env);
      expect({ code: cut.code, stderr: cut.stderr.slice(-2000) }).toEqual({ code: 0, stderr: expect.any(String) });
      expect(JSON.parse(cut.stdout).validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
      await expectSameTables(sourceUrl, otherUrl, ['public."Log Lines"', 'public.items', 'public.scratch']);
    } finally {
      await dropDatabase('target', otherDb);
    }
  }

  const targetCount = (from: string) => withClient(targetUrl, async (c: Client) => (await c.query(`SELECT count(*)::int AS n FROM ${from}`)).rows[0].n as number);
  /** Target connections applying a large transaction. */
  const applyConnections = () =>
    withClient(targetUrl, async (c: Client) => (await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '%large transaction%'`)).rows[0].n as number);
});

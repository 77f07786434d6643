import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '../../local/postgres-cluster';
import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, nextSequenceValues } from '../support/compare';
import { dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { startWriter, type Writer } from '../support/writer';
import { waitFor } from '../support/wait';

/** Waits with the worker's last words on a timeout, and says how long it took (the slowest file of the suite). */
const waitUntil = (what: string, check: () => Promise<boolean>) => waitFor(what, check, { timeoutMs: 240_000, explain: () => workerOutput(), log: 'cdc test' });

jest.setTimeout(15 * 60_000);

const ACCOUNTS = 200_000;
const DOCS = 40;

/**
 * The acceptance test of CDC: an application keeps writing to the source during the whole
 * migration (inserts, updates next to TOASTed values and of them, cascading deletes, bulk
 * updates, TRUNCATE). The worker is SIGKILLed once during the full load and once during CDC,
 * the source server restarts once during CDC, a column is added on the source; after the
 * application stops, cutover must leave every table equal to its source and nothing on the source.
 */
/** The running worker's last output, for failure messages. */
let workerOutput = () => '';
const testStarted = Date.now();

describe('full load + CDC with a concurrent writer, a killed worker and a source restart', () => {
  let source: PostgresCluster;
  let sourceUrl: string;
  const targetDb = uniqueName('cdc_target');
  const name = uniqueName('cdc').replace(/_/g, '-');
  const queue = `q-${name}`;
  let secrets: Record<string, string>;
  let worker: WorkerProcess | undefined;
  workerOutput = () => worker?.output().slice(-4000) ?? '(no worker)';
  let writer: Writer | undefined;

  beforeAll(async () => {
    // Its own source server: this test restarts it.
    source = await startPostgresCluster({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    await withClient(source.url(), (c) => c.query('CREATE DATABASE shop'));
    sourceUrl = source.url('shop');
    secrets = { SRC_URL: sourceUrl, TGT_URL: serverUrl('target', targetDb) };
    await withClient(sourceUrl, (c) =>
      c.query(`
        CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text);
        INSERT INTO accounts SELECT g, g % 1000, 'account ' || g FROM generate_series(1, ${ACCOUNTS}) g;
        CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
        ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
        INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(g::text || s::text), '') FROM generate_series(1, 3000) s)
          FROM generate_series(1, ${DOCS}) g;
        CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                             kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
        INSERT INTO events (account_id, kind) SELECT g % ${ACCOUNTS} + 1, 'initial' FROM generate_series(1, 100000) g;
        CREATE TABLE "Scratch Pad" (k int PRIMARY KEY, v text);
        INSERT INTO "Scratch Pad" SELECT g, 'initial' FROM generate_series(1, 100) g;
        ANALYZE;`),
    );
    worker = await startWorker(cliEnv(queue, secrets));
  });

  afterAll(async () => {
    await writer?.stop();
    await worker?.stop('SIGKILL');
    await source?.stop();
    await dropDatabase('target', targetDb);
  });

  it('ends with every table equal, sequences carried, and no slot or publication left', async () => {
    const planFile = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 2, chunkRows: 20000 }
`);
    writer = startWriter(sourceUrl, { firstNewId: ACCOUNTS + 1, accounts: ACCOUNTS, docs: DOCS });
    const run = dbferry(['start', planFile, '--wait', '--json'], cliEnv(queue));
    const { client, close } = await temporalClient();
    const handle = client.workflow.getHandle(migrationWorkflowId(name));
    const tgt = serverUrl('target', targetDb);
    const restartWorker = async () => {
      await worker!.stop('SIGKILL');
      worker = await startWorker(cliEnv(queue, secrets));
    };
    try {
      // 1. SIGKILL mid-load, once a chunk has committed.
      await waitUntil('a committed chunk', async () => {
        const r = await withClient(tgt, (c) => c.query('SELECT count(*)::int AS n FROM _dbferry.table_loads')).catch(() => undefined);
        return (r?.rows[0]?.n ?? 0) >= 1;
      });
      await restartWorker();

      // 2. CDC runs and has applied some of the writer's changes: SIGKILL again.
      const applied = async () => {
        const r = await withClient(tgt, (c) => c.query('SELECT coalesce(sum(changes), 0)::int AS n FROM _dbferry.cdc_progress')).catch(() => undefined);
        return r?.rows[0]?.n ?? 0;
      };
      await waitUntil('CDC applying changes', async () => (await applied()) > 200);
      const startOutcome = await run;
      console.log(`cdc test: start --wait returned after ${((Date.now() - testStarted) / 1000).toFixed(0)} s into the file`);
      expect(startOutcome.code).toBe(0); // start --wait returns once CDC has caught up
      expect(JSON.parse(startOutcome.stdout)).toMatchObject({ phase: 'cdc', lag: { caughtUp: true } });
      await restartWorker();
      const beforeRestart = await applied();
      await waitUntil('CDC resumed after the kill', async () => (await applied()) > beforeRestart + 200);

      // 3. The source restarts: the applier must recover by itself.
      await source.restart();
      const afterSourceRestart = await applied();
      await waitUntil('CDC resumed after the source restart', async () => (await applied()) > afterSourceRestart + 200);

      // 4. A column added on the source reaches the target, with the values written to it.
      await withClient(sourceUrl, (c) => c.query('ALTER TABLE accounts ADD COLUMN tier text'));
      writer.useTier();
      await waitUntil('the added column on the target', async () => {
        // Until the column exists on the target, the query fails.
        const r = await withClient(tgt, (c) => c.query("SELECT count(*)::int AS n FROM accounts WHERE tier = 'gold'")).catch(() => undefined);
        return (r?.rows[0]?.n ?? 0) > 0;
      });

      // 5. Cutover is refused while the application still writes.
      const early = await dbferry(['cutover', name], cliEnv(queue));
      expect(early.code).toBe(5);
      expect(early.stderr).toMatch(/cutover refused: writes are still arriving/);

      await writer.stop();
      expect(writer.committed()).toBeGreaterThan(500);
      const cutStarted = Date.now();
      const cut = await dbferry(['cutover', name, '--wait', '--json'], cliEnv(queue));
      console.log(`cdc test: cutover took ${((Date.now() - cutStarted) / 1000).toFixed(1)} s`);
      expect({ code: cut.code, stderr: cut.stderr.slice(-2000) }).toEqual({ code: 0, stderr: expect.any(String) });
      const report = JSON.parse(cut.stdout);
      expect(report.status.phase).toBe('completed');
      expect(report.validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
      expect(report.finalize.cleanup.dropped.join('\n')).toMatch(/replication slot [\s\S]*publication/);
      const accounts = report.status.tables.find((t: { name: string }) => t.name === 'public.accounts');
      expect(accounts.inserts).toBeGreaterThan(0);
      expect(accounts.updates).toBeGreaterThan(0);
      expect(accounts.deletes).toBeGreaterThan(0);
    } finally {
      await close();
    }

    // The test's own comparison, independent of dbferry's validation.
    await expectSameTables(sourceUrl, tgt, ['public."Scratch Pad"', 'public.accounts', 'public.docs', 'public.events']);
    expect(await nextSequenceValues(tgt)).toEqual(await nextSequenceValues(sourceUrl));
    const left = await withClient(sourceUrl, (c) =>
      c.query("SELECT (SELECT count(*) FROM pg_replication_slots)::int AS slots, (SELECT count(*) FROM pg_publication)::int AS pubs"),
    );
    expect(left.rows[0]).toEqual({ slots: 0, pubs: 0 });
    // The load really ran under two snapshots (the first holder died with its worker).
    const gens = await withClient(tgt, (c) => c.query('SELECT count(*)::int AS n FROM _dbferry.snapshots'));
    expect(gens.rows[0].n).toBeGreaterThanOrEqual(2);
  });
});

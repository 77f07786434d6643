import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '../../local/postgres-cluster';
import { startDevServer, type DevServer } from '../../local/temporal-dev-server';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { withClient } from '../support/databases';
import { startWriter, type Writer } from '../support/writer';

jest.setTimeout(8 * 60_000);

const ACCOUNTS = 40_000;
const DOCS = 100;
const BASE = join(__dirname, '..', '..', '.tmp', 'test-servers');

/**
 * The held scenarios of issue 18, as one unlucky day: the Temporal server restarts during the
 * load and during CDC, the target restarts during the load and crashes during CDC (the applier
 * commits without waiting for the target's disk, so the crash loses its last commits: the source
 * must not have been told to forget them), the source hangs (SIGSTOP) for 60 s and comes back,
 * while an application writes throughout. The migration
 * must ride all of it out by itself and end with every table equal, by the test's own
 * fingerprint of every row. Its own Temporal server (with a history file, so a restart keeps
 * the migrations), source and target: this test restarts them.
 */
describe('fault: Temporal, the target and the source go away (the target by a crash) and come back', () => {
  let temporal: DevServer;
  let source: PostgresCluster;
  let target: PostgresCluster;
  let worker: WorkerProcess | undefined;
  let writer: Writer | undefined;
  let port: number;
  let uiPort: number;
  const dbFile = join(mkdtempSync(join(BASE, 'temporal-')), 'history.db');
  const name = `restarts-${Date.now().toString(36)}`;
  const queue = `q-${name}`;
  const env = (extra: Record<string, string> = {}) => ({ ...cliEnv(queue, extra), TEMPORAL_ADDRESS: temporal.address });

  beforeAll(async () => {
    // The target's WAL writer writes out async commits only every 10 s (the most PostgreSQL
    // allows), so its crash during CDC loses the applier's last seconds of commits: the
    // source must still have them.
    [source, target] = await Promise.all([
      startPostgresCluster({ baseDir: BASE }),
      startPostgresCluster({ baseDir: BASE, settings: { wal_writer_delay: "'10s'" } }),
    ]);
    temporal = await startDevServer({ dbFile });
    [, port] = temporal.address.split(':').map(Number) as [number, number];
    uiPort = Number(new URL(temporal.uiUrl).port);
    await withClient(source.url(), (c) => c.query('CREATE DATABASE shop'));
    await withClient(source.url('shop'), (c) =>
      c.query(`
        CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text);
        INSERT INTO accounts SELECT g, g % 1000, 'account ' || g FROM generate_series(1, ${ACCOUNTS}) g;
        CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
        INSERT INTO docs SELECT g, 'doc ' || g, repeat(md5(g::text), 200) FROM generate_series(1, ${DOCS}) g;
        CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                             kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
        INSERT INTO events (account_id, kind) SELECT g % ${ACCOUNTS} + 1, 'initial' FROM generate_series(1, 600000) g;
        CREATE TABLE "Scratch Pad" (k int PRIMARY KEY, v text);
        INSERT INTO "Scratch Pad" SELECT g, 'initial' FROM generate_series(1, 100) g;
        ANALYZE;`),
    );
    worker = await startWorker(env({ SRC_URL: source.url('shop'), TGT_URL: target.url('shop') }));
  });

  afterAll(async () => {
    await writer?.stop();
    await worker?.stop('SIGKILL');
    await temporal?.stop();
    await Promise.all([source?.stop(), target?.stop()]);
  });

  const restartTemporal = async () => {
    await temporal.stop();
    temporal = await startDevServer({ dbFile, port, uiPort });
  };

  /** Every process of a cluster, stopped (SIGSTOP) or continued: a hung server, not a dead one. */
  const signalCluster = (c: PostgresCluster, signal: 'STOP' | 'CONT') => {
    const postmaster = readFileSync(join(c.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!.trim();
    const children = execFileSync('pgrep', ['-P', postmaster], { encoding: 'utf8' }).split('\n').filter(Boolean);
    execFileSync('kill', [`-${signal}`, postmaster, ...children]);
  };

  const status = async () => JSON.parse((await dbferry(['status', name, '--json'], env())).stdout || '{}');
  const waitFor = async (what: string, check: () => Promise<boolean>, ms = 180_000) => {
    const deadline = Date.now() + ms;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the worker said:\n${worker?.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  it('rides out every restart and hang by itself and ends with every table equal', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 2, chunkRows: 20000 }
`);
    writer = startWriter(source.url('shop'), { firstNewId: ACCOUNTS + 1, accounts: ACCOUNTS, docs: DOCS });
    const start = await dbferry(['start', plan], env());
    expect(start.code).toBe(0);

    // During the load: Temporal restarts, then the target.
    const loaded = async () =>
      ((await withClient(target.url('shop'), (c) => c.query('SELECT count(*)::int AS n FROM _dbferry.table_loads')).catch(() => undefined))?.rows[0]?.n ?? 0) as number;
    await waitFor('a first chunk loaded', async () => (await loaded()) >= 1);
    await restartTemporal();
    await target.restart();

    // CDC runs and catches up.
    await waitFor('CDC caught up', async () => (await status()).lag?.caughtUp === true);
    // During CDC: the source hangs for 60 s (longer than any heartbeat timeout), Temporal
    // restarts, the target crashes (losing the commits it had not yet written out) and comes back.
    signalCluster(source, 'STOP');
    await new Promise((r) => setTimeout(r, 60_000));
    signalCluster(source, 'CONT');
    await restartTemporal();
    await waitFor('CDC applying again', async () => (await status()).lag?.caughtUp === true);
    await target.crash();
    const before = writer.committed();
    await waitFor('the writer going on', async () => writer!.committed() > before + 50);
    await waitFor('CDC caught up again', async () => (await status()).lag?.caughtUp === true);

    await writer.stop();
    writer = undefined;
    const cut = await dbferry(['cutover', name, '--wait', '--json'], env());
    expect({ code: cut.code, stderr: cut.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
    const report = JSON.parse(cut.stdout);
    expect(report.status.phase).toBe('completed');
    // The test's own comparison: count and digest of every row of every table.
    await expectSameTables(source.url('shop'), target.url('shop'), ['public."Scratch Pad"', 'public.accounts', 'public.docs', 'public.events']);
  });
});

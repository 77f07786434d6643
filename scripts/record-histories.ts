/**
 * Records the workflow histories that test/unit/replay.test.ts replays against the current
 * workflow code, so that a change which would break a running migration fails CI.
 *
 *   bash scripts/build.sh && node dist/scripts/record-histories.js [--label <label>] [scenario ...]
 *
 * Starts its own servers (two throwaway PostgreSQL clusters and a Temporal dev server), runs
 * real migrations through `bin/dbferry` (a `dbferry worker` child process holds the database
 * URLs; plans only name environment variables), and writes each migration's history and its
 * child workflows' histories, as Temporal's JSON history format, to
 * test/replay/histories/<scenario>/<workflowId>.json. The file name is the workflow ID: replay
 * needs it (child workflow IDs derive from it).
 *
 * Scenarios: full-load, pause-retry, cdc-cutover (default: all three). Without --label the
 * plans are named replay-<scenario> and their files are replaced; with --label L they are named
 * replay-<scenario>-L and added next to the existing ones (keep the histories of the older code
 * while migrations started with it may still run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Client as PgClient } from 'pg';
import { migrationWorkflowId } from '../workflows/search-attributes';
import { startPostgresCluster, type PostgresCluster } from '../local/postgres-cluster';
import { startDevServer, type DevServer } from '../local/temporal-dev-server';

const SCENARIOS = ['full-load', 'pause-retry', 'cdc-cutover'] as const;
type Scenario = (typeof SCENARIOS)[number];

const ROOT = findRoot(__dirname);
const BIN = join(ROOT, 'bin', 'dbferry');
const HISTORIES = join(ROOT, 'test', 'replay', 'histories');

const say = (m: string) => console.error(`[record] ${m}`);

interface Servers {
  source: PostgresCluster;
  target: PostgresCluster;
  temporal: DevServer;
}

interface Recorded {
  workflowId: string;
  json: string;
}

async function main(): Promise<number> {
  const { label, scenarios } = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'client', 'cli.js')) || !existsSync(join(ROOT, 'dist', 'workflow-bundle.js'))) {
    throw new Error('dbferry is not built: run bash scripts/build.sh first');
  }
  const base = join(ROOT, '.tmp', 'record-histories');
  mkdirSync(base, { recursive: true });
  say('starting two PostgreSQL clusters and a Temporal dev server');
  const started = await Promise.allSettled([startPostgresCluster({ baseDir: base }), startPostgresCluster({ baseDir: base }), startDevServer({ headless: true })] as const);
  const running = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const servers: Servers = {
      source: (started[0] as PromiseFulfilledResult<PostgresCluster>).value,
      target: (started[1] as PromiseFulfilledResult<PostgresCluster>).value,
      temporal: (started[2] as PromiseFulfilledResult<DevServer>).value,
    };
    const secrets = [servers.source.password, servers.target.password];
    // Everything is recorded before anything is written: a failed run leaves the files as they were.
    const recorded: Array<{ scenario: Scenario; name: string; histories: Recorded[] }> = [];
    for (const scenario of scenarios) {
      const name = label ? `replay-${scenario}-${label}` : `replay-${scenario}`;
      say(`${scenario}: migration ${name}`);
      await RUN[scenario](servers, name);
      const histories = await fetchHistories(servers.temporal.address, name);
      for (const h of histories) assertNoSecrets(h, secrets);
      recorded.push({ scenario, name, histories });
    }
    for (const { scenario, name, histories } of recorded) {
      const dir = join(HISTORIES, scenario);
      mkdirSync(dir, { recursive: true });
      const id = migrationWorkflowId(name);
      for (const f of readdirSync(dir)) {
        if (f === `${id}.json` || f.startsWith(`${id}-load-`)) rmSync(join(dir, f));
      }
      for (const h of histories) {
        const file = join(dir, `${h.workflowId}.json`);
        writeFileSync(file, h.json + '\n');
        say(`wrote ${file.slice(ROOT.length + 1)} (${Math.ceil(Buffer.byteLength(h.json) / 1024)} KiB)`);
      }
    }
    return 0;
  } finally {
    await Promise.all(running.map((s) => s.stop().catch(() => undefined)));
    if (planDir) rmSync(planDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const RUN: Record<Scenario, (s: Servers, name: string) => Promise<void>> = {
  /** A plain full load of two small tables, to completion. */
  async 'full-load'(s, name) {
    const db = dbName(name);
    await createSourceTables(s.source, db);
    const env = endpointEnv(s, db, `${db}_copy`);
    await withWorker(s, name, env, async (cli) => {
      const plan = writePlan(`
name: ${name}
mode: full-load
source: { engine: postgres, url: env:REPLAY_SOURCE_URL }
target: { engine: postgres, url: env:REPLAY_TARGET_URL, createDatabase: true }
`);
      await expectExit(cli(['start', plan, '--wait']), 0, 'start --wait');
    });
  },

  /**
   * The target refuses rows in the middle of the load (a check constraint planted the moment
   * dbferry creates the table): the migration waits for an operator; the check is removed and
   * `dbferry retry` completes it.
   */
  async 'pause-retry'(s, name) {
    const db = dbName(name);
    await createSourceTables(s.source, db);
    const targetDb = `${db}_copy`;
    await sql(s.target.url(), `CREATE DATABASE ${targetDb}`);
    await plantCheckOnCreate(s.target.url(targetDb), 'public.orders', 'id < 300');
    const env = endpointEnv(s, db, targetDb);
    await withWorker(s, name, env, async (cli) => {
      const plan = writePlan(`
name: ${name}
mode: full-load
source: { engine: postgres, url: env:REPLAY_SOURCE_URL }
target: { engine: postgres, url: env:REPLAY_TARGET_URL, createDatabase: false }
`);
      const paused = await expectExit(cli(['start', plan, '--wait']), 3, 'start --wait (pauses)');
      if (!/full-load/.test(paused.stdout)) throw new Error(`expected the full load to pause:\n${paused.stdout}`);
      await sql(s.target.url(targetDb), 'DROP EVENT TRIGGER plant; ALTER TABLE public.orders DROP CONSTRAINT planted');
      await expectExit(cli(['retry', name, '--reason', 'dropped the planted check']), 0, 'retry');
      await expectExit(cli(['start', plan, '--wait']), 0, 'start --wait (after retry)');
    });
  },

  /** Full load and CDC, a few writes while CDC runs, then cutover to completion. */
  async 'cdc-cutover'(s, name) {
    const db = dbName(name);
    await createSourceTables(s.source, db);
    const targetDb = `${db}_copy`;
    const env = endpointEnv(s, db, targetDb);
    await withWorker(s, name, env, async (cli) => {
      const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:REPLAY_SOURCE_URL }
target: { engine: postgres, url: env:REPLAY_TARGET_URL, createDatabase: true }
`);
      const caughtUp = await expectExit(cli(['start', plan, '--wait']), 0, 'start --wait (CDC caught up)');
      if (!/CDC has caught up/.test(caughtUp.stdout)) throw new Error(`expected CDC to have caught up:\n${caughtUp.stdout}`);
      await sql(
        s.source.url(db),
        `INSERT INTO customers VALUES (1001, 'late customer');
         INSERT INTO orders VALUES (5001, 1001, 12.50);
         UPDATE orders SET total = total + 1 WHERE id <= 10;
         DELETE FROM orders WHERE id BETWEEN 11 AND 15;`,
      );
      await waitFor('the CDC writes on the target', 60_000, async () => {
        const r = await query(s.target.url(targetDb), 'SELECT (SELECT count(*) FROM orders WHERE id = 5001)::int AS inserted, (SELECT count(*) FROM orders WHERE id BETWEEN 11 AND 15)::int AS deleted');
        return r[0]?.inserted === 1 && r[0]?.deleted === 0;
      });
      // Cutover wants writes to have stopped for a few seconds; a refusal is retried.
      await sleep(5_000);
      for (let attempt = 1; ; attempt++) {
        const cut = await cli(['cutover', name, '--wait']);
        if (cut.code === 0 && /every table equal/.test(cut.stdout)) break;
        if (cut.code === 5 && /writes are still arriving/.test(cut.stderr) && attempt < 5) {
          await sleep(3_000);
          continue;
        }
        throw new Error(`cutover --wait exited ${cut.code}:\n${cut.stdout}\n${cut.stderr}`);
      }
    });
  },
};

/** Two small tables, one referencing the other. */
async function createSourceTables(source: PostgresCluster, db: string): Promise<void> {
  await sql(source.url(), `CREATE DATABASE ${db}`);
  await sql(
    source.url(db),
    `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
     INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 200) g;
     CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), total numeric(10,2) NOT NULL);
     INSERT INTO orders SELECT g, 1 + g % 200, (g % 97) * 1.5 FROM generate_series(1, 500) g;
     ANALYZE;`,
  );
}

/** An event trigger that adds a check constraint `planted` to a table the moment it is created. */
async function plantCheckOnCreate(url: string, objectIdentity: string, check: string): Promise<void> {
  const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;
  const body = `ALTER TABLE ${objectIdentity} ADD CONSTRAINT planted CHECK (${check})`;
  await sql(
    url,
    `CREATE FUNCTION plant_check() RETURNS event_trigger LANGUAGE plpgsql AS $plant$
     BEGIN
       IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                   WHERE command_tag = 'CREATE TABLE' AND object_identity = ${lit(objectIdentity)}) THEN
         EXECUTE ${lit(body)};
       END IF;
     END $plant$;
     CREATE EVENT TRIGGER plant ON ddl_command_end EXECUTE FUNCTION plant_check();`,
  );
}

// ---------------------------------------------------------------------------------------------
// Histories

/** The migration's history and every child workflow's (the load's), as Temporal's JSON format. */
async function fetchHistories(address: string, name: string): Promise<Recorded[]> {
  const connection = await Connection.connect({ address });
  try {
    const client = new TemporalClient({ connection, namespace: 'default' });
    const out: Recorded[] = [];
    const queue = [migrationWorkflowId(name)];
    while (queue.length > 0) {
      const workflowId = queue.shift()!;
      const handle = client.workflow.getHandle(workflowId);
      // Children may have failed (a paused load); the migration itself must have completed.
      const { status } = await handle.describe();
      if (out.length === 0 && status.name !== 'COMPLETED') throw new Error(`workflow ${workflowId} is ${status.name}, expected COMPLETED`);
      if (status.name === 'RUNNING') throw new Error(`workflow ${workflowId} is still running`);
      const history = await handle.fetchHistory();
      for (const e of history.events ?? []) {
        const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
        if (child) queue.push(child);
      }
      if (!/^[A-Za-z0-9._-]+$/.test(workflowId)) throw new Error(`workflow ID ${workflowId} cannot be a file name`);
      out.push({ workflowId, json: historyToJSON(history) });
    }
    return out;
  } finally {
    await connection.close();
  }
}

/** Fails when a password, or any URL with credentials, appears in a history, raw or in a decoded payload. */
function assertNoSecrets(h: Recorded, passwords: string[]): void {
  const decoded = h.json.replace(/"data": ?"([A-Za-z0-9+/=]*)"/g, (_m, b64: string) => JSON.stringify(Buffer.from(b64, 'base64').toString('utf8')));
  for (const text of [h.json, decoded]) {
    for (const p of passwords) {
      if (text.includes(p) || text.includes(encodeURIComponent(p))) throw new Error(`history ${h.workflowId} contains a database password`);
    }
    if (/[a-z][a-z0-9+.-]*:\/\/[^/\s"@:]+:[^/\s"@]+@/i.test(text)) throw new Error(`history ${h.workflowId} contains a URL with credentials`);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}
type Cli = (args: string[]) => Promise<CliResult>;

/** Runs `fn` with a `dbferry worker` child process (it alone holds the URLs) and a CLI without them. */
async function withWorker(s: Servers, name: string, secrets: Record<string, string>, fn: (cli: Cli) => Promise<void>): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: s.temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    DBFERRY_TASK_QUEUE: `q-${name}`,
  };
  const worker = spawn(process.execPath, [BIN, 'worker'], { env: { ...env, ...secrets, DBFERRY_LOG_LEVEL: 'INFO' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  worker.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  worker.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  try {
    await waitFor('the worker', 60_000, async () => {
      if (worker.exitCode !== null) throw new Error(`the worker exited: ${out}`);
      return /polling task queue/.test(out);
    });
    await fn((args) => run(args, env));
  } catch (err) {
    console.error(`[record] worker output:\n${out}`);
    throw err;
  } finally {
    await stop(worker);
  }
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

async function expectExit(p: Promise<CliResult>, code: number, what: string): Promise<CliResult> {
  const r = await p;
  if (r.code !== code) throw new Error(`${what} exited ${r.code}, expected ${code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await done;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------------------------
// Helpers

function endpointEnv(s: Servers, sourceDb: string, targetDb: string): Record<string, string> {
  return { REPLAY_SOURCE_URL: s.source.url(sourceDb), REPLAY_TARGET_URL: s.target.url(targetDb) };
}

function dbName(name: string): string {
  return name.replace(/-/g, '_');
}

let planDir: string | undefined;

function writePlan(yaml: string): string {
  planDir ??= mkdtempSync(join(tmpdir(), 'dbferry-record-'));
  const file = join(mkdtempSync(join(planDir, 'plan-')), 'plan.yaml');
  writeFileSync(file, yaml);
  return file;
}

async function query(url: string, text: string): Promise<Array<Record<string, unknown>>> {
  const c = new PgClient({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

async function sql(url: string, text: string): Promise<void> {
  await query(url, text);
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
      if (/exited/.test(String(err))) throw err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(200);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class UsageError extends Error {}

function parseArgs(argv: string[]): { label?: string; scenarios: Scenario[] } {
  let label: string | undefined;
  const scenarios: Scenario[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--label') {
      label = argv[++i];
      if (!label || !/^[a-z0-9][a-z0-9-]*$/.test(label)) throw new UsageError('--label needs lower-case letters, digits and dashes');
    } else if ((SCENARIOS as readonly string[]).includes(a)) scenarios.push(a as Scenario);
    else throw new UsageError(`unknown argument ${a}; usage: record-histories [--label <label>] [${SCENARIOS.join(' | ')} ...]`);
  }
  return { label, scenarios: scenarios.length > 0 ? scenarios : [...SCENARIOS] };
}

/** The repository root (this file runs from dist/scripts). */
function findRoot(from: string): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'dbferry'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root above ${from}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) console.error(`[record] ${err.message}`);
    else console.error(`[record] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);

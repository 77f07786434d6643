import type { Client as TemporalClient } from '@temporalio/client';
import { Client } from 'pg';
import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { migrationHistories } from '../support/histories';
import { startWriter, type Writer } from '../support/writer';

jest.setTimeout(9 * 60_000);

const ACCOUNTS = 20_000;
const DOCS = 50;
/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED */
const STARTED = 2;

/**
 * Issue 18: the worker is SIGKILLed in the middle of every step that runs on it after the load
 * (create-tables, build-indexes, the cutover check, validate, finalize), while an application
 * writes to the source until cutover. Each step is held mid-work on the target (an event
 * trigger that sleeps in a DDL, a lock an application holds), so the kill lands inside it, not
 * before or after. Another worker takes each step over once Temporal notices the lost one; the
 * migration ends completed with every table equal by the test's own fingerprint, and the
 * history shows each of those activities ran more than once.
 */
describe('fault: the worker is killed in every step', () => {
  const sourceDb = uniqueName('faults_kill');
  const targetDb = uniqueName('faults_kill_t');
  const name = uniqueName('kill').replace(/_/g, '-');
  const queue = `q-${name}`;
  const src = () => serverUrl('source', sourceDb);
  const tgt = () => serverUrl('target', targetDb);
  const env = cliEnv(queue, { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb) });
  let worker: WorkerProcess | undefined;
  let writer: Writer | undefined;
  let temporal: { client: TemporalClient; close: () => Promise<void> };
  const held: Client[] = [];

  beforeAll(async () => {
    temporal = await temporalClient();
    await createDatabase('source', sourceDb);
    await withClient(src(), (c) =>
      c.query(`
        CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, note text);
        INSERT INTO accounts SELECT g, g % 1000, 'account ' || g FROM generate_series(1, ${ACCOUNTS}) g;
        CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
        INSERT INTO docs SELECT g, 'doc ' || g, repeat(md5(g::text), 200) FROM generate_series(1, ${DOCS}) g;
        CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                             kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX events_kind_idx ON events (kind);
        INSERT INTO events (account_id, kind) SELECT g % ${ACCOUNTS} + 1, 'initial' FROM generate_series(1, 100000) g;
        CREATE TABLE "Scratch Pad" (k int PRIMARY KEY, v text);
        INSERT INTO "Scratch Pad" SELECT g, 'initial' FROM generate_series(1, 100) g;
        ANALYZE;`),
    );
    // The target, prepared with a DDL that sleeps: creating table accounts and adding the
    // foreign key of events each take 4 s, long enough to kill the worker inside create-tables
    // and build-indexes (the loaders build the keys and indexes; foreign keys wait for the step).
    await createDatabase('target', targetDb);
    await withClient(tgt(), (c) =>
      c.query(`
        CREATE SCHEMA slow;
        CREATE FUNCTION slow.ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.accounts' AND command_tag = 'CREATE TABLE')
             OR (TG_TAG = 'ALTER TABLE' AND current_query() LIKE '%FOREIGN KEY%') THEN
            PERFORM pg_sleep(4);
          END IF;
        END $f$;
        CREATE EVENT TRIGGER slow_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION slow.ddl();`),
    );
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await writer?.stop();
    await Promise.all(held.map((c) => c.end().catch(() => undefined)));
    await worker?.stop('SIGKILL');
    await temporal?.close();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  const waitFor = async (what: string, check: () => Promise<boolean>, ms = 180_000) => {
    const deadline = Date.now() + ms;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the worker said:\n${worker?.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const running = async (activity: string) => {
    const d = await temporal.client.workflow.getHandle(migrationWorkflowId(name)).describe();
    return (d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === activity && a.state === STARTED);
  };
  /** A backend of the target database busy in the event trigger's sleep or waiting for a lock. */
  const targetWaiting = (event: 'PgSleep' | 'Lock') =>
    withClient(serverUrl('target'), async (c) => {
      const r = await c.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND (wait_event = $2 OR wait_event_type = $2)`,
        [targetDb, event],
      );
      return (r.rowCount ?? 0) > 0;
    });
  const killInside = async (activity: string, event: 'PgSleep' | 'Lock', release?: () => Promise<void>) => {
    await waitFor(`${activity} held on the target`, async () => (await running(activity)) && (await targetWaiting(event)));
    await worker!.stop('SIGKILL');
    await release?.();
    worker = await startWorker(env);
  };
  /** A transaction an application holds on the target: a statement, kept until released. */
  const hold = async (sql: string) => {
    const c = new Client({ connectionString: tgt() });
    await c.connect();
    held.push(c);
    await c.query('BEGIN');
    await c.query(sql);
    return async () => {
      await c.query('ROLLBACK');
      await c.end();
    };
  };
  const caughtUp = async () => JSON.parse((await dbferry(['status', name, '--json'], env)).stdout || '{}').lag?.caughtUp === true;

  it('another worker takes over each step; the migration completes with every table equal', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
`);
    writer = startWriter(src(), { firstNewId: ACCOUNTS + 1, accounts: ACCOUNTS, docs: DOCS });
    const start = await dbferry(['start', plan], env);
    expect({ code: start.code, err: start.stderr }).toEqual({ code: 0, err: expect.any(String) });

    await killInside('createTables', 'PgSleep');
    await killInside('buildIndexes', 'PgSleep');
    await waitFor('CDC caught up', caughtUp);
    await writer.stop();
    writer = undefined;
    await waitFor('CDC caught up after the last write', caughtUp);

    // An application's locks on the target: validate must wait for `accounts`, finalize (which
    // sets the sequences) for `events_id_seq`.
    const releaseAccounts = await hold('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
    const releaseSequence = await hold('ALTER SEQUENCE events_id_seq CACHE 1');
    const cutover = dbferry(['cutover', name, '--wait', '--json'], env);
    await waitFor('the cutover check running', () => running('beginCutover'));
    await worker!.stop('SIGKILL');
    worker = await startWorker(env);
    await killInside('validate', 'Lock', releaseAccounts);
    await killInside('finalizeCutover', 'Lock', releaseSequence);

    const cut = await cutover;
    expect({ code: cut.code, stderr: cut.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
    const report = JSON.parse(cut.stdout);
    expect(report.status.phase).toBe('completed');
    await expectSameTables(src(), tgt(), ['public."Scratch Pad"', 'public.accounts', 'public.docs', 'public.events']);

    // Each killed step really ran again: its last attempt is not its first.
    const [main] = await migrationHistories(temporal.client, name);
    const attempts = new Map<string, number>();
    for (const e of main!.events) {
      const startedEvent = e.activityTaskStartedEventAttributes;
      if (startedEvent) {
        const type = main!.events.find((x) => String(x.eventId) === String(startedEvent.scheduledEventId))?.activityTaskScheduledEventAttributes?.activityType?.name;
        if (type) attempts.set(type, Math.max(attempts.get(type) ?? 0, startedEvent.attempt ?? 0));
      }
    }
    for (const activity of ['createTables', 'buildIndexes', 'beginCutover', 'validate', 'finalizeCutover']) {
      expect({ activity, retried: (attempts.get(activity) ?? 0) >= 2 }).toEqual({ activity, retried: true });
    }
  });
});

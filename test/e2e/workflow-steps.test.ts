import { setTimeout as delay } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  CancelledFailure,
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { parsePlan, type Mode, type Plan } from '../../plan';
import { migrationWorkflowId } from '../../workflows/search-attributes';
import type {
  Alert,
  CdcResult,
  Finding,
  MigrationReport,
  MigrationStatus,
  OperatorDecision,
  StepName,
  StepStatus,
  TableValidationResult,
} from '../../plan/migration-types';
import type { migrationWorkflow } from '../../workflows';
import {
  cutoverUpdate,
  operatorDecisionSignal,
  operatorDecisionUpdate,
  pauseCdcUpdate,
  resumeCdcUpdate,
  statusQuery,
} from '../../workflows/messages';
import { requiredEnv } from '../support/databases';

/**
 * The migration workflow on a real Temporal server with FAKE activities: which steps each mode
 * runs and in which order, and what the operator gate (retry, skip, abort), validation, CDC
 * pause/resume/cutover and alerts do. Only the workflow's public surface is used: its type name,
 * its messages, the activity names and the result types, so the workflow's modules can be
 * rearranged freely underneath.
 */

type Name = keyof Activities;
type Migration = WorkflowHandle<typeof migrationWorkflow>;

const TABLES = ['public.customers', 'public.orders'];
const LOAD_TASKS = 3;
const MARKER_LSN = 'postgres:0/3000000';

/** Every fake activity that runs until the workflow cancels it heartbeats this often. */
const BEAT_MS = 100;

/**
 * One migration's fake activities: the order they were called in, failures to raise on a call,
 * activities held until released, and the flag cutover sets so that the applier returns.
 */
class Fake {
  readonly plan: Plan;
  /** Activity names in the order the attempts started. */
  readonly calls: Name[] = [];
  /** Calls and cancellations (`streamChanges:cancelled`), in order. */
  readonly events: string[] = [];
  readonly alerts: Alert[] = [];
  readonly loadedTasks: number[] = [];
  /** Running streamChanges attempts. */
  streaming = 0;
  cutoverBegun = false;
  findings: Finding[] = [];
  /** How long a cancelled streamChanges takes to stop (the real one stops at its next heartbeat). */
  stopMs = 0;
  /** Tables the first validate call reports as different. */
  differentOnce: string[] = [];
  readonly #failures = new Map<Name, ApplicationFailure[]>();
  readonly #holds = new Map<Name, { released: Promise<void>; release: () => void }>();

  constructor(plan: Plan) {
    this.plan = plan;
  }

  /** The next call of `name` throws (non-retryable, with a table and a hint, like the real activities). */
  failNext(name: Name, type = 'PermissionDenied', table = 'public.x', code?: string): this {
    const failure = ApplicationFailure.create({
      type,
      nonRetryable: true,
      message: `${name} failed on purpose (${type})`,
      details: [{ table, hint: `grant the privilege on ${table}, then retry`, ...(code ? { code } : {}) }],
    });
    this.#failures.set(name, [...(this.#failures.get(name) ?? []), failure]);
    return this;
  }

  /** Calls of `name` wait (cancellably) until the returned function is called. */
  hold(name: Name): () => void {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    this.#holds.set(name, { released, release });
    return () => {
      this.#holds.delete(name);
      release();
    };
  }

  releaseAll(): void {
    for (const h of this.#holds.values()) h.release();
    this.#holds.clear();
  }

  count(name: Name): number {
    return this.calls.filter((c) => c === name).length;
  }

  /** The call log with the (concurrent) load tasks left out. */
  callsWithoutTasks(): Name[] {
    return this.calls.filter((c) => c !== 'loadTask');
  }

  async enter(name: Name): Promise<void> {
    this.calls.push(name);
    this.events.push(name);
    const hold = this.#holds.get(name);
    if (hold) await untilCancelled(hold.released);
    const failure = this.#failures.get(name)?.shift();
    if (failure) throw failure;
  }

  validation(): TableValidationResult[] {
    const different = this.differentOnce;
    this.differentOnce = [];
    return TABLES.map((table) => {
      const equal = !different.includes(table);
      return { table, sourceRows: '10', targetRows: equal ? '10' : '9', checksum: equal ? 'equal' : 'different', equal };
    });
  }
}

/** Heartbeats on a timer until `done` resolves; rejects with CancelledFailure when the workflow cancels. */
async function untilCancelled(done: Promise<unknown> = new Promise(() => undefined), details?: () => unknown): Promise<void> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(details?.()), BEAT_MS);
  try {
    ctx.heartbeat(details?.());
    await Promise.race([done, ctx.cancelled]);
  } finally {
    clearInterval(beat);
  }
}

const fakes = new Map<string, Fake>();
const fakeOf = (input: { plan: Plan }): Fake => {
  const f = fakes.get(input.plan.name);
  if (!f) throw ApplicationFailure.create({ nonRetryable: true, message: `no fake for ${input.plan.name}` });
  return f;
};

const activities: Activities = {
  async preflight(input) {
    const f = fakeOf(input);
    await f.enter('preflight');
    return {
      source: { description: 'source postgres/fake:5432/shop', version: '16.4' },
      target: { description: 'target postgres/fake:5432/shop', version: '16.4' },
      findings: f.findings,
      tables: TABLES.map((name) => ({ name, estimatedRows: '10', estimatedBytes: '8192' })),
    };
  },
  async createDatabase(input) {
    await fakeOf(input).enter('createDatabase');
    return { database: 'shop', created: true };
  },
  async createTables(input) {
    await fakeOf(input).enter('createTables');
    return { tables: TABLES, statements: TABLES.length, alreadyCreated: false };
  },
  async planLoad(input) {
    await fakeOf(input).enter('planLoad');
    return { tasks: LOAD_TASKS, units: LOAD_TASKS, chunkedTables: 0, estimatedBytes: '24576' };
  },
  // Like the real holder: keeps the snapshot until the load is over and the workflow cancels it.
  async holdSnapshot(input) {
    const f = fakeOf(input);
    await f.enter('holdSnapshot');
    try {
      await untilCancelled();
    } catch (err) {
      f.events.push('holdSnapshot:cancelled');
      throw err;
    }
    return { generation: 1, snapshot: '00000003-00000002-1', position: 'postgres:0/1000000' };
  },
  async loadTask(input) {
    const f = fakeOf(input);
    await f.enter('loadTask');
    f.loadedTasks.push(input.task);
    return { task: input.task, alreadyLoaded: false, units: 1, rows: '10', bytes: 100 };
  },
  // A PostgreSQL source: loaders join the read point from any worker.
  async readPointQueue(input) {
    await fakeOf(input).enter('readPointQueue');
    return {};
  },
  async finishLoad(input) {
    await fakeOf(input).enter('finishLoad');
    return {
      report: {
        snapshot: '00000003-00000002-1',
        position: 'postgres:0/1000000',
        snapshots: [{ generation: 1, snapshot: '00000003-00000002-1', position: 'postgres:0/1000000', at: new Date().toISOString() }],
        tables: TABLES.map((table) => ({ table, rows: '10', bytes: 100, chunks: 1, ms: 1 })),
      },
    };
  },
  async leaveOutTable(input) {
    await fakeOf(input).enter('leaveOutTable');
    return { table: input.table, droppedOnTarget: true };
  },
  async buildIndexes(input) {
    await fakeOf(input).enter('buildIndexes');
    return { primaryKeys: 2, uniques: 0, indexes: 1, foreignKeys: 1, sequences: 1, ms: 1 };
  },
  // The aws runner's full load is tested against a fake AWS in aws-runner.test.ts.
  async prepareManagedLoad() {
    throw ApplicationFailure.create({ nonRetryable: true, message: 'not used here' });
  },
  async managedLoad() {
    throw ApplicationFailure.create({ nonRetryable: true, message: 'not used here' });
  },
  async dumpRestore(input) {
    await fakeOf(input).enter('dumpRestore');
    return {
      snapshot: '00000003-00000002-1',
      tables: TABLES.map((table) => ({ table, rows: '10' })),
      bytes: 1000,
      jobs: 2,
      dumpMs: 1,
      restoreMs: 1,
      ms: 2,
    };
  },
  async validate(input) {
    const f = fakeOf(input);
    await f.enter('validate');
    return { tables: f.validation(), ms: 1 };
  },
  async prepareCdc(input) {
    await fakeOf(input).enter('prepareCdc');
    return { sourceObjects: [`slot ${input.plan.cdc.slot}`, `publication ${input.plan.cdc.publication}`], startPosition: 'postgres:0/1000000' };
  },
  // Like the real applier: runs until cancelled (pause, abort), or returns once the cutover
  // marker was written (beginCutover) and "applied".
  async streamChanges(input): Promise<CdcResult> {
    const f = fakeOf(input);
    await f.enter('streamChanges');
    f.streaming++;
    let over = false;
    try {
      const cutover = (async () => {
        while (!f.cutoverBegun && !over) await delay(BEAT_MS);
      })();
      await untilCancelled(cutover, () => ({ appliedPosition: 'postgres:0/2000000', caughtUp: true }));
    } catch (err) {
      if (f.stopMs) await delay(f.stopMs);
      f.events.push('streamChanges:cancelled');
      throw err;
    } finally {
      over = true;
      f.streaming--;
    }
    return {
      stoppedAt: 'cutover',
      appliedPosition: MARKER_LSN,
      markerPosition: MARKER_LSN,
      transactions: 1,
      changes: 2,
      tables: [{ table: 'public.orders', inserts: 1, updates: 1, deletes: 0, truncates: 0 }],
    };
  },
  async beginCutover(input) {
    const f = fakeOf(input);
    await f.enter('beginCutover');
    f.cutoverBegun = true;
    return { markerPosition: MARKER_LSN, quietSeconds: 3 };
  },
  async finalizeCutover(input) {
    await fakeOf(input).enter('finalizeCutover');
    return { sequences: 1, cleanup: { dropped: ['slot', 'publication'], kept: [] } };
  },
  async cleanupSource(input) {
    await fakeOf(input).enter('cleanupSource');
    return { dropped: [`slot ${input.plan.cdc.slot}`, `publication ${input.plan.cdc.publication}`], kept: [] };
  },
  async sendAlert(input) {
    const f = fakeOf(input);
    await f.enter('sendAlert');
    f.alerts.push(input.alert);
  },
};

// ---- helpers ------------------------------------------------------------------------------------

const queue = `workflow-steps-${Date.now().toString(36)}`;
let connection: Connection;
let client: Client;
let workerConnection: NativeConnection;
let worker: Worker;
let running: Promise<void>;
let bundle: WorkflowBundle;
const started: Migration[] = [];
let seq = 0;

function fake(mode: Mode, opts: { alerts?: boolean } = {}): Fake {
  const name = `wfs-${mode}-${Date.now().toString(36)}-${++seq}`;
  const r = parsePlan({
    name,
    mode,
    source: { engine: 'postgres', url: 'env:SRC_URL' },
    target: { engine: 'postgres', url: 'env:TGT_URL' },
    ...(opts.alerts ? { alerts: { webhook: 'env:HOOK_URL' } } : {}),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const f = new Fake(r.plan);
  fakes.set(name, f);
  return f;
}

async function start(f: Fake): Promise<Migration> {
  const h = await client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
    taskQueue: queue,
    workflowId: migrationWorkflowId(f.plan.name),
    args: [{ plan: f.plan }],
    workflowExecutionTimeout: '2 minutes',
  });
  started.push(h);
  return h;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await delay(50);
  }
}

const status = (h: Migration): Promise<MigrationStatus> => h.query(statusQuery);

function statusWhen(h: Migration, what: string, pred: (s: MigrationStatus) => boolean): Promise<MigrationStatus> {
  return eventually(what, async () => {
    const s = await status(h);
    return pred(s) ? s : undefined;
  });
}

const awaitingOperator = (h: Migration) => statusWhen(h, 'phase awaiting-operator', (s) => s.phase === 'awaiting-operator');
const cdcRunning = (h: Migration, f: Fake, attempts = 1) =>
  statusWhen(
    h,
    `CDC running (streamChanges attempt ${attempts})`,
    (s) => s.phase === 'cdc' && stepStatus(s, 'cdc') === 'Running' && f.count('streamChanges') === attempts && f.streaming === 1,
  );

const steps = (s: MigrationStatus): StepName[] => s.steps.map((x) => x.step);
const stepStatus = (s: MigrationStatus, step: StepName): StepStatus | undefined => s.steps.find((x) => x.step === step)?.status;
const decide = (h: Migration, d: OperatorDecision) => h.executeUpdate(operatorDecisionUpdate, { args: [d] });

async function completed(h: Migration): Promise<MigrationReport> {
  const report = await h.result();
  expect(report.status.phase).toBe('completed');
  return report;
}

/** The workflow's failure (it must fail): its cause as the client sees it. */
async function failureOf(h: Migration): Promise<ApplicationFailure> {
  const err = await h.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

/** Sends an Update that must be refused by its validator; returns the reason. */
async function refused(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return (err as WorkflowUpdateFailedError).cause?.message ?? '';
}

/** Update events in the history (a refused Update writes none). */
async function updateEvents(h: Migration): Promise<number> {
  const history = await h.fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes || e.workflowExecutionUpdateCompletedEventAttributes).length;
}

const FULL_LOAD_STEPS: StepName[] = ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate'];
const FULL_LOAD_CALLS: Name[] = ['preflight', 'createDatabase', 'createTables', 'planLoad', 'holdSnapshot', 'finishLoad', 'buildIndexes', 'validate'];

// ---- setup --------------------------------------------------------------------------------------

jest.setTimeout(30_000);

// The injected failures would each log a warning; only errors (a workflow task failing) are shown.
Runtime.install({ logger: new DefaultLogger('ERROR') });

beforeAll(async () => {
  const address = requiredEnv('DBFERRY_TEST_TEMPORAL_ADDRESS');
  const noop = () => undefined;
  [bundle, connection, workerConnection] = await Promise.all([
    bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop },
    }),
    Connection.connect({ address }),
    NativeConnection.connect({ address }),
  ]);
  client = new Client({ connection });
  worker = await Worker.create({
    connection: workerConnection,
    taskQueue: queue,
    workflowBundle: bundle,
    activities,
    // Cancellation reaches an activity with a heartbeat's answer: pause and abort are seen at once.
    maxHeartbeatThrottleInterval: '200ms',
    shutdownGraceTime: '2s',
  });
  running = worker.run();
}, 60_000);

afterEach(async () => {
  for (const f of fakes.values()) f.releaseAll();
  // Nothing of a failed test keeps running into the next one.
  await Promise.all(started.splice(0).map((h) => h.terminate('test over').catch(() => undefined)));
});

afterAll(async () => {
  if (worker) {
    worker.shutdown();
    await running;
  }
  await workerConnection?.close();
  await connection?.close();
});

// ---- tests --------------------------------------------------------------------------------------

describe('each mode runs its steps in order', () => {
  it('full-load: preflight, create-database, create-tables, full-load (plan, snapshot, tasks, finish), build-indexes, validate', async () => {
    const f = fake('full-load');
    const report = await completed(await start(f));

    expect(steps(report.status)).toEqual(FULL_LOAD_STEPS);
    expect(report.status.steps.every((s) => s.status === 'Succeeded')).toBe(true);
    expect(f.callsWithoutTasks()).toEqual(FULL_LOAD_CALLS);
    // Every task of the stored plan loaded once, all of them before the ledger check.
    expect([...f.loadedTasks].sort()).toEqual([0, 1, 2]);
    const tasksAt = f.calls.flatMap((c, i) => (c === 'loadTask' ? [i] : []));
    expect(Math.min(...tasksAt)).toBeGreaterThan(f.calls.indexOf('planLoad'));
    expect(Math.max(...tasksAt)).toBeLessThan(f.calls.indexOf('finishLoad'));
    expect(report.load?.tables.map((t) => t.table)).toEqual(TABLES);
    expect(report.status.tables.map((t) => [t.name, t.validation])).toEqual(TABLES.map((t) => [t, 'equal']));
    // No alert without a webhook; the snapshot holder is let go once the load is over.
    expect(f.count('sendAlert')).toBe(0);
    await eventually('the snapshot holder cancelled', () => f.events.includes('holdSnapshot:cancelled'), 5_000);
  });

  it('dump-restore: preflight, create-database, dump-restore, validate', async () => {
    const f = fake('dump-restore');
    const report = await completed(await start(f));

    expect(steps(report.status)).toEqual(['preflight', 'create-database', 'dump-restore', 'validate']);
    expect(report.status.steps.every((s) => s.status === 'Succeeded')).toBe(true);
    expect(f.calls).toEqual(['preflight', 'createDatabase', 'dumpRestore', 'validate']);
    expect(report.dumpRestore?.tables.map((t) => t.table)).toEqual(TABLES);
  });

  it('full-load-and-cdc: ... build-indexes, cdc until cutover, then validate and finalize', async () => {
    const f = fake('full-load-and-cdc');
    const h = await start(f);
    const during = await cdcRunning(h, f);
    expect(steps(during)).toEqual([...FULL_LOAD_STEPS.slice(0, -1), 'cdc', 'validate', 'finalize']);
    // Validation waits for the cutover: the source still moves while CDC runs.
    expect(f.count('validate')).toBe(0);

    const ack = await h.executeUpdate(cutoverUpdate);
    expect(ack).toEqual({ markerPosition: MARKER_LSN, quietSeconds: 3 });
    const report = await completed(h);

    expect(steps(report.status)).toEqual([...FULL_LOAD_STEPS.slice(0, -1), 'cdc', 'validate', 'finalize']);
    expect(report.status.steps.every((s) => s.status === 'Succeeded')).toBe(true);
    expect(f.callsWithoutTasks()).toEqual([...FULL_LOAD_CALLS.slice(0, -1), 'prepareCdc', 'streamChanges', 'beginCutover', 'validate', 'finalizeCutover']);
    expect(f.loadedTasks).toHaveLength(LOAD_TASKS);
    expect(report.cdc).toEqual(expect.objectContaining({ stoppedAt: 'cutover', markerPosition: MARKER_LSN }));
    expect(report.finalize).toEqual({ sequences: 1, cleanup: { dropped: ['slot', 'publication'], kept: [] } });
    expect(report.status.cdc?.cutover?.markerPosition).toBe(MARKER_LSN);
    expect(f.count('cleanupSource')).toBe(0);
  });

  it('cdc: preflight, cdc until cutover, validate, finalize', async () => {
    const f = fake('cdc');
    const h = await start(f);
    expect(steps(await cdcRunning(h, f))).toEqual(['preflight', 'cdc', 'validate', 'finalize']);
    await h.executeUpdate(cutoverUpdate);
    const report = await completed(h);

    expect(steps(report.status)).toEqual(['preflight', 'cdc', 'validate', 'finalize']);
    expect(report.status.steps.every((s) => s.status === 'Succeeded')).toBe(true);
    expect(f.calls).toEqual(['preflight', 'prepareCdc', 'streamChanges', 'beginCutover', 'validate', 'finalizeCutover']);
  });
});

describe('the operator gate', () => {
  it('a failed create-tables waits for an operator with the failure; retry runs the step again and the migration completes', async () => {
    const f = fake('full-load').failNext('createTables');
    const h = await start(f);
    const paused = await awaitingOperator(h);

    expect(paused.failure).toEqual(
      expect.objectContaining({ step: 'create-tables', type: 'PermissionDenied', table: 'public.x', hint: 'grant the privilege on public.x, then retry' }),
    );
    expect(stepStatus(paused, 'create-tables')).toBe('Failed');
    expect(stepStatus(paused, 'full-load')).toBe('NotRun');
    // Nothing after the failed step ran while it waited.
    expect(f.calls).toEqual(['preflight', 'createDatabase', 'createTables']);

    expect(await decide(h, { action: 'retry', reason: 'granted', step: 'create-tables' })).toBe('retry accepted for create-tables');
    const report = await completed(h);
    expect(f.count('createTables')).toBe(2);
    expect(f.callsWithoutTasks()).toEqual([...FULL_LOAD_CALLS.slice(0, 3), 'createTables', ...FULL_LOAD_CALLS.slice(3)]);
    const rec = report.status.steps.find((s) => s.step === 'create-tables')!;
    expect(rec).toEqual(expect.objectContaining({ status: 'Succeeded', operatorRetries: 1 }));
    expect(report.status.decisions).toEqual([expect.objectContaining({ action: 'retry', reason: 'granted', pausedStep: 'create-tables' })]);
    expect(report.status.failure).toBeUndefined();
  });

  it('skip on a failed build-indexes marks it Skipped and goes on to validate', async () => {
    const f = fake('full-load').failNext('buildIndexes', 'DatabaseError', 'public.orders');
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'build-indexes', type: 'DatabaseError', table: 'public.orders' }));

    expect(await decide(h, { action: 'skip', reason: 'indexes by hand later' })).toBe('skip accepted for build-indexes');
    const report = await completed(h);
    expect(stepStatus(report.status, 'build-indexes')).toBe('Skipped');
    expect(report.status.steps.find((s) => s.step === 'build-indexes')?.note).toContain('indexes by hand later');
    expect(stepStatus(report.status, 'validate')).toBe('Succeeded');
    expect(f.count('buildIndexes')).toBe(1);
    expect(f.callsWithoutTasks().slice(-2)).toEqual(['buildIndexes', 'validate']);
    expect(report.build).toBeUndefined();
  });

  it('a table dropped on the source during the load: skip takes it out of the migration and the load runs again without it', async () => {
    const f = fake('full-load').failNext('finishLoad', 'SourceObjectMissing', 'public.orders', '42P01');
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'full-load', type: 'SourceObjectMissing', table: 'public.orders' }));
    expect(paused.failure?.hint).toContain(`dbferry skip ${f.plan.name}`);

    expect(await decide(h, { action: 'skip', reason: 'retired' })).toContain('public.orders is taken out of the migration');
    const report = await completed(h);
    // The table is removed first, inside the step, then the load runs again.
    expect(f.callsWithoutTasks().slice(f.callsWithoutTasks().indexOf('leaveOutTable') - 1)).toEqual([
      'finishLoad',
      'leaveOutTable',
      'planLoad',
      'holdSnapshot',
      'finishLoad',
      'buildIndexes',
      'validate',
    ]);
    expect(stepStatus(report.status, 'full-load')).toBe('Succeeded');
    expect(report.status.leftOut).toEqual([expect.objectContaining({ table: 'public.orders', reason: 'retired' })]);
    expect(report.status.decisions).toEqual([expect.objectContaining({ action: 'skip', leftOut: 'public.orders', pausedStep: 'full-load' })]);
  });

  it('a missing object that is not the table itself (a publication lacking it) is not offered as a skip', async () => {
    const f = fake('full-load').failNext('finishLoad', 'SourceObjectMissing', 'public.orders');
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure?.hint).not.toContain('dbferry skip');
    expect(await refused(decide(h, { action: 'skip' }))).toContain('full-load cannot be skipped');
    await decide(h, { action: 'retry' });
    await completed(h);
    expect(f.count('leaveOutTable')).toBe(0);
  });

  it('a missing table in a step before the model exists (create-tables) is not offered as a skip', async () => {
    const f = fake('full-load').failNext('createTables', 'SourceObjectMissing', 'public.orders', '42P01');
    const h = await start(f);
    await awaitingOperator(h);
    expect(await refused(decide(h, { action: 'skip' }))).toContain('create-tables cannot be skipped');
    await decide(h, { action: 'retry' });
    await completed(h);
    expect(f.count('leaveOutTable')).toBe(0);
  });

  it('skip is refused where it would lose data (create-tables): nothing is recorded and the step still waits', async () => {
    const f = fake('full-load').failNext('createTables');
    const h = await start(f);
    await awaitingOperator(h);
    expect(await refused(decide(h, { action: 'skip' }))).toContain('create-tables cannot be skipped');
    expect(await refused(decide(h, { action: 'retry', step: 'build-indexes' }))).toContain('paused on create-tables');
    const still = await status(h);
    expect(still.phase).toBe('awaiting-operator');
    expect(still.decisions).toEqual([]);
    expect(await updateEvents(h)).toBe(0);
    await decide(h, { action: 'retry' });
    await completed(h);
  });

  it('abort ends the migration failed (MigrationAborted) and, without CDC, leaves the source alone', async () => {
    const f = fake('full-load').failNext('createTables');
    const h = await start(f);
    await awaitingOperator(h);
    expect(await decide(h, { action: 'abort', reason: 'not today' })).toBe('abort accepted for create-tables');

    const failure = await failureOf(h);
    expect(failure.type).toBe('MigrationAborted');
    expect(failure.message).toContain('not today');
    const s = await status(h);
    expect(s.phase).toBe('aborted');
    expect(s.leftBehind?.join('\n')).toContain('nothing (a full load leaves nothing on the source)');
    expect(f.count('cleanupSource')).toBe(0);
    expect(f.calls).toEqual(['preflight', 'createDatabase', 'createTables']);
  });

  it('abort of a paused CDC migration drops what it made on the source (cleanupSource)', async () => {
    const f = fake('cdc').failNext('prepareCdc', 'PermissionDenied', 'public.orders');
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'cdc', type: 'PermissionDenied', table: 'public.orders' }));
    // CDC cannot be skipped: every change since the load would be lost.
    expect(await refused(decide(h, { action: 'skip' }))).toContain('cdc cannot be skipped');

    await decide(h, { action: 'abort' });
    expect((await failureOf(h)).type).toBe('MigrationAborted');
    expect(f.calls).toEqual(['preflight', 'prepareCdc', 'cleanupSource']);
    const s = await status(h);
    expect(s.leftBehind).toEqual(expect.arrayContaining([`slot ${f.plan.cdc.slot}: dropped`]));
  });

  it('abort while CDC runs stops the applier and drops the slot', async () => {
    const f = fake('full-load-and-cdc');
    const h = await start(f);
    await cdcRunning(h, f);
    // While CDC runs, abort is the one decision possible.
    expect(await refused(decide(h, { action: 'retry' }))).toContain('only abort is possible');
    expect(await decide(h, { action: 'abort', reason: 'wrong target' })).toBe('abort accepted for cdc');

    expect((await failureOf(h)).type).toBe('MigrationAborted');
    expect(f.events.filter((e) => !e.startsWith('holdSnapshot')).slice(-2)).toEqual(['streamChanges:cancelled', 'cleanupSource']);
    expect(f.streaming).toBe(0);
    expect(f.count('validate')).toBe(0);
    expect(f.count('beginCutover')).toBe(0);
  });

  it('a cancel from Temporal (Web UI, temporal workflow cancel) of a CDC migration cleans up the source and ends cancelled', async () => {
    const f = fake('full-load-and-cdc');
    const h = await start(f);
    await cdcRunning(h, f);
    await h.cancel();
    const err = await h.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(f.count('cleanupSource')).toBe(1);
    expect(f.streaming).toBe(0);
    const s = await h.query(statusQuery);
    expect(s.phase).toBe('aborted');
    expect(s.leftBehind?.join('\n')).toContain(': dropped');
  });

  it('a decision while nothing is paused is refused by the validator and writes nothing', async () => {
    const f = fake('full-load');
    const release = f.hold('createTables');
    const h = await start(f);
    await statusWhen(h, 'create-tables running', (s) => stepStatus(s, 'create-tables') === 'Running' && f.count('createTables') === 1);

    for (const action of ['retry', 'skip', 'abort'] as const) {
      expect(await refused(decide(h, { action }))).toContain('is not waiting for an operator (phase creating-tables)');
    }
    expect((await status(h)).decisions).toEqual([]);
    expect(await updateEvents(h)).toBe(0);

    release();
    const report = await completed(h);
    expect(report.status.decisions).toEqual([]);
    expect(f.count('createTables')).toBe(1);
  });

  it('the fallback signal applies a valid decision and ignores an invalid one', async () => {
    const f = fake('full-load').failNext('createTables');
    const h = await start(f);
    await awaitingOperator(h);
    await h.signal(operatorDecisionSignal, { action: 'skip' }); // create-tables cannot be skipped: ignored
    const still = await status(h);
    expect(still.phase).toBe('awaiting-operator');
    expect(still.decisions).toEqual([]);

    await h.signal(operatorDecisionSignal, { action: 'retry', reason: 'by signal' });
    const report = await completed(h);
    expect(report.status.decisions).toEqual([expect.objectContaining({ action: 'retry', reason: 'by signal' })]);
    expect(f.count('createTables')).toBe(2);
  });
});

describe('checks that pause for a person', () => {
  it('a blocking preflight finding pauses (PreflightBlocked); skip accepts it and the migration goes on', async () => {
    const f = fake('full-load');
    f.findings = [
      { severity: 'blocking', code: 'no-primary-key', message: 'public.orders has no primary key', table: 'public.orders' },
      { severity: 'warning', code: 'big', message: 'public.customers is large', table: 'public.customers' },
    ];
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'preflight', type: 'PreflightBlocked', table: 'public.orders' }));
    expect(paused.failure?.message).toContain('public.orders has no primary key');
    expect(paused.failure?.message).not.toContain('is large');
    expect(f.calls).toEqual(['preflight']);

    await decide(h, { action: 'skip', reason: 'accepted' });
    const report = await completed(h);
    expect(stepStatus(report.status, 'preflight')).toBe('Skipped');
    expect(f.callsWithoutTasks()).toEqual(FULL_LOAD_CALLS);
  });

  it('a validation that finds a table different pauses with ValidationMismatch naming it; retry validates again', async () => {
    const f = fake('full-load');
    f.differentOnce = ['public.orders'];
    const h = await start(f);
    const paused = await awaitingOperator(h);
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'validate', type: 'ValidationMismatch', table: 'public.orders' }));
    expect(paused.failure?.message).toContain('public.orders');
    expect(paused.failure?.message).not.toContain('public.customers');
    expect(paused.tables.find((t) => t.name === 'public.orders')?.validation).toBe('different');

    await decide(h, { action: 'retry' });
    const report = await completed(h);
    expect(f.count('validate')).toBe(2);
    expect(report.status.tables.map((t) => [t.name, t.validation])).toEqual(TABLES.map((t) => [t, 'equal']));
  });
});

describe('CDC: pause, resume, cutover', () => {
  it('cutover and pause are refused before CDC runs', async () => {
    const f = fake('full-load-and-cdc');
    const release = f.hold('createTables');
    const h = await start(f);
    await statusWhen(h, 'create-tables running', (s) => stepStatus(s, 'create-tables') === 'Running');
    expect(await refused(h.executeUpdate(cutoverUpdate))).toContain('cutover is possible once CDC runs');
    expect(await refused(h.executeUpdate(pauseCdcUpdate, { args: [{}] }))).toContain('only running CDC can be paused');
    expect(await refused(h.executeUpdate(resumeCdcUpdate))).toContain('is not paused');
    expect(f.count('beginCutover')).toBe(0);
    expect(await updateEvents(h)).toBe(0);

    release();
    await cdcRunning(h, f);
    await h.executeUpdate(cutoverUpdate);
    await completed(h);
  });

  it('a full-load migration has no CDC to cut over', async () => {
    const f = fake('full-load');
    const release = f.hold('createDatabase');
    const h = await start(f);
    await statusWhen(h, 'create-database running', (s) => stepStatus(s, 'create-database') === 'Running');
    expect(await refused(h.executeUpdate(cutoverUpdate))).toContain('there is no CDC to cut over');
    release();
    await completed(h);
    expect(f.count('beginCutover')).toBe(0);
  });

  it('pause stops the applier, resume starts it again, cutover drains, validates and finalizes', async () => {
    const f = fake('cdc', { alerts: true });
    const h = await start(f);
    await cdcRunning(h, f);

    // Pause returns once the applier has stopped: nothing more is applied.
    const ack = await h.executeUpdate(pauseCdcUpdate, { args: [{ reason: 'source maintenance' }] });
    expect(ack).toContain('paused');
    expect(f.streaming).toBe(0);
    expect(f.events).toContain('streamChanges:cancelled');
    const paused = await status(h);
    expect(paused.phase).toBe('cdc');
    expect(paused.cdc?.paused).toEqual(expect.objectContaining({ reason: 'source maintenance' }));
    await eventually('the paused alert', () => f.alerts.find((a) => a.kind === 'paused' && a.step === 'cdc'));

    expect(await refused(h.executeUpdate(pauseCdcUpdate, { args: [{}] }))).toContain('already paused');
    expect(await refused(h.executeUpdate(cutoverUpdate))).toContain('is paused');
    expect(f.count('beginCutover')).toBe(0);

    await h.executeUpdate(resumeCdcUpdate);
    const resumed = await cdcRunning(h, f, 2);
    expect(resumed.cdc?.paused).toBeUndefined();
    expect(f.count('prepareCdc')).toBe(1);

    expect(await h.executeUpdate(cutoverUpdate)).toEqual({ markerPosition: MARKER_LSN, quietSeconds: 3 });
    const report = await completed(h);
    expect(f.calls.filter((c) => c !== 'sendAlert')).toEqual([
      'preflight',
      'prepareCdc',
      'streamChanges',
      'streamChanges',
      'beginCutover',
      'validate',
      'finalizeCutover',
    ]);
    expect(report.cdc?.stoppedAt).toBe('cutover');
    expect(report.status.cdc?.cutover?.markerPosition).toBe(MARKER_LSN);
    expect(f.alerts.map((a) => a.kind)).toEqual(expect.arrayContaining(['paused', 'resumed', 'completed']));
  });

  // An abort that arrives while the applier is still stopping for a pause used to leave the
  // pause handler waiting forever (and with it the workflow, phase aborted but Running).
  it('pause is refused while a cutover is being checked (the marker must not wait behind a pause)', async () => {
    const f = fake('cdc');
    const release = f.hold('beginCutover');
    const h = await start(f);
    await cdcRunning(h, f);
    const cutting = h.executeUpdate(cutoverUpdate);
    await eventually('beginCutover running', () => f.count('beginCutover') > 0);
    expect(await refused(h.executeUpdate(pauseCdcUpdate, { args: [{}] }))).toContain('cutover');
    release();
    await cutting;
    await completed(h);
  });

  it('an abort while a pause waits for the applier still ends the migration', async () => {
    const f = fake('cdc');
    f.stopMs = 1000;
    const h = await start(f);
    await cdcRunning(h, f);
    const pausing = h.executeUpdate(pauseCdcUpdate, { args: [{}] }).catch((err: unknown) => err);
    await statusWhen(h, 'the pause asked for', (s) => !!s.cdc?.paused);
    await decide(h, { action: 'abort' });
    const ended = await Promise.race([failureOf(h).then((e) => e.type), delay(5_000).then(() => 'still running after 5 s')]);
    expect(ended).toBe('MigrationAborted');
    expect(f.count('cleanupSource')).toBe(1);
    expect(await pausing).toMatch(/aborted/);
  });
});

describe('alerts', () => {
  it('with a webhook, a paused step sends a "paused" alert naming the step, table and command', async () => {
    const f = fake('full-load', { alerts: true }).failNext('createTables');
    const h = await start(f);
    await awaitingOperator(h);
    const alert = await eventually('the paused alert', () => f.alerts.find((a) => a.kind === 'paused'));
    expect(alert).toEqual(
      expect.objectContaining({ kind: 'paused', step: 'create-tables', table: 'public.x', command: `dbferry retry ${f.plan.name}` }),
    );
    expect(alert.cause).toContain('PermissionDenied');
    expect(alert.text).toContain('grant the privilege on public.x');

    await decide(h, { action: 'retry' });
    const report = await completed(h);
    expect(f.alerts.map((a) => a.kind)).toEqual(['paused', 'resumed', 'completed']);
    expect(report.status.alerts).toEqual({ sent: 3, missed: [] });
  });
});

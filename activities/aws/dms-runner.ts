/**
 * The aws runner's steps: AWS DMS moves the rows (full load, then ongoing replication) while
 * dbferry does the rest around it, on the same workflow as the native runner — the tables
 * created before the task starts, keys and indexes built while the task holds its cached
 * changes, validation over `pg` after the drain, a person asked when DMS fails.
 */
import { busiest, largerFirst, listed, TABLES_LISTED } from '../../plan/table-lists';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import {
  DescribeTableStatisticsCommand,
  ReloadTablesCommand,
  StartReplicationTaskCommand,
  StopReplicationTaskCommand,
  type ReplicationTask,
  type TableStatistics,
} from '@aws-sdk/client-database-migration-service';
import { GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import { DMS_LOB_MODE, dmsNames, dmsTableDone, dmsTaskPhase } from '../../plan/dms-task';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, Alert, CdcPrepareResult, CdcProgress, CdcResult, CdcTableStats, CutoverAck, FullLoadResult, ManagedLoadProgress, TableLoadResult } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { qualifiedKey, sourceTable, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { qualifiedTable } from '../../plan/sql-names';
import { CdcAlarms } from '../apply/cdc-alarms';
import { initProgress } from '../apply/progress';
import { heartbeatNow, withHeartbeat } from '../heartbeat';
import { cdcState } from '../telemetry';
import { resolveMysqlEndpoint } from '../mysql/connection';
import type { SourceEngine } from '../engine';
import { ensureCdcModel } from '../native/prepare-cdc';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { ensureBookkeeping } from '../target/bookkeeping';
import { loadModel } from '../target/model';
import { awsCall, awsClients, awsFailureCode, pollMs } from './aws-call';
import { ensureDmsSlot, readsOwnSlot } from './dms-pg-slot';
import { describeTask, ensureEndpoint, ensureEventSubscription, ensureReplicationInstance, ensureTask, testEndpoint } from './dms-resources';

export interface ManagedLoadPrepared {
  task: string;
  replicationInstance: string;
  /** True when dbferry created the replication instance (cleanup deletes it then). */
  instanceCreated: boolean;
  eventSubscription: boolean;
}

/**
 * Everything the task needs, in order: the replication instance, both endpoints (tested from
 * it), the task itself, and DMS's event subscription before the task ever starts.
 */
export async function prepareManagedLoad({ plan }: ActivityInput): Promise<ManagedLoadPrepared> {
  const progress = { step: 'replication instance' };
  return withHeartbeat(() => ({ ...progress }), () => prepareDms(plan, (s) => (progress.step = s)));
}

async function prepareDms(plan: Plan, say: (s: string) => void): Promise<ManagedLoadPrepared> {
  {
    const instance = await ensureReplicationInstance(plan, (s) => say(`waiting for ${s}`));
    say('endpoints');
    const [source, target] = await Promise.all([ensureEndpoint(plan, 'source'), ensureEndpoint(plan, 'target')]);
    say('testing the endpoints from the replication instance');
    await Promise.all([testEndpoint(plan, 'source', instance.arn, source, say), testEndpoint(plan, 'target', instance.arn, target, say)]);
    say('replication task');
    const mysqlDatabase = plan.source.engine === 'mysql' ? (await resolveMysqlEndpoint(plan)).database : undefined;
    await ensureTask(plan, { instance: instance.arn, source, target, ...(mysqlDatabase !== undefined ? { mysqlDatabase } : {}) }, (s) => say(`waiting for ${s}`));
    const subscribed = await ensureEventSubscription(plan);
    return { task: dmsNames(plan).task, replicationInstance: plan.aws!.replicationInstance!.id, instanceCreated: instance.created, eventSubscription: subscribed };
  }
}

async function taskOrFail(plan: Plan): Promise<ReplicationTask> {
  const t = await describeTask(plan);
  if (!t?.ReplicationTaskArn) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `DMS replication task ${dmsNames(plan).task} does not exist (deleted outside dbferry?)`,
      details: [{ hint: 'run dbferry retry: the full-load step creates it again and reloads every table' }],
    });
  }
  return t;
}

async function tableStatistics(plan: Plan, taskArn: string): Promise<TableStatistics[]> {
  const out: TableStatistics[] = [];
  let marker: string | undefined;
  do {
    const r = await awsCall('DescribeTableStatistics', () =>
      awsClients(plan).dms.send(new DescribeTableStatisticsCommand({ ReplicationTaskArn: taskArn, MaxRecords: 500, ...(marker ? { Marker: marker } : {}) })),
    );
    out.push(...(r.TableStatistics ?? []));
    marker = r.Marker;
  } while (marker);
  return out;
}

/** Model tables by the names DMS may report them under: the source's, and the target's. */
function tablesByDmsName(model: SchemaModel): Map<string, TableModel> {
  const m = new Map<string, TableModel>();
  for (const t of model.tables) {
    m.set(qualifiedKey(t), t);
    m.set(qualifiedKey(sourceTable(t)), t);
  }
  return m;
}

const dmsKey = (s: TableStatistics) => qualifiedKey({ schema: s.SchemaName ?? '', name: s.TableName ?? '' });

function taskFailure(plan: Plan, t: ReplicationTask, what: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.DmsTaskFailed,
    nonRetryable: true,
    message: `DMS task ${dmsNames(plan).task} ${what}: ${t.LastFailureMessage || t.StopReason || t.Status}`,
    details: [{ hint: `fix what DMS names, then dbferry retry ${plan.name} (a failed full load is reloaded from empty tables; failed CDC resumes)` }],
  });
}

function tableErrors(plan: Plan, errored: TableStatistics[]): ApplicationFailure {
  const names = errored.map(dmsKey);
  return ApplicationFailure.create({
    type: FailureType.DmsTableError,
    nonRetryable: true,
    message: `DMS suspended ${names.length} table${names.length > 1 ? 's' : ''} of task ${dmsNames(plan).task} (Table error): ${names.join(', ')}`,
    details: [{ table: names[0], hint: `see the task's CloudWatch log for the row DMS could not write, fix it, then dbferry retry ${plan.name} (the table is emptied and reloaded)` }],
  });
}

/**
 * Empties target tables before DMS loads them again: with DO_NOTHING it would append to what is
 * there. During the load nothing references them yet (TRUNCATE); during CDC foreign keys exist,
 * so the rows are deleted as a replica (no foreign-key action on other tables; dbferry's own
 * key-redesign triggers, ENABLE ALWAYS, still unlink what pointed at them).
 */
async function emptyTables(tgt: PgEndpoint, tables: TableModel[], when: 'load' | 'cdc'): Promise<void> {
  if (tables.length === 0) return;
  const names = tables.map((t) => qualifiedTable(t.schema, t.name));
  await withConnection(tgt, 'empty tables before a DMS reload', async (c) => {
    if (when === 'load') {
      await c.query(`TRUNCATE ${names.join(', ')}`);
      return;
    }
    await c.query('BEGIN');
    try {
      await c.query('SET LOCAL session_replication_role = replica');
      for (const n of names) await c.query(`DELETE FROM ${n}`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

/**
 * Starts the task. A lost answer makes the same request twice: DMS refuses the second
 * (InvalidResourceStateFault), and a task found starting or running is what was asked for.
 */
async function startTask(plan: Plan, arn: string, type: 'start-replication' | 'resume-processing' | 'reload-target', cdcStartPosition?: string): Promise<void> {
  try {
    await awsCall('StartReplicationTask', () =>
      awsClients(plan).dms.send(new StartReplicationTaskCommand({ ReplicationTaskArn: arn, StartReplicationTaskType: type, ...(cdcStartPosition ? { CdcStartPosition: cdcStartPosition } : {}) })),
    );
  } catch (err) {
    const now = awsFailureCode(err) === 'InvalidResourceStateFault' ? (await describeTask(plan))?.Status : undefined;
    if (now !== 'starting' && now !== 'running') throw err;
  }
}

/**
 * Tables DMS suspended, in a running task: emptied and reloaded alone (the operator's retry
 * after fixing the cause). Returns their names: they show "Table error" until DMS takes the
 * reload up. DMS reloads tables only in a running task.
 */
async function reloadErrored(plan: Plan, tgt: PgEndpoint, arn: string, model: SchemaModel, errored: TableStatistics[], when: 'load' | 'cdc'): Promise<Set<string>> {
  const byName = tablesByDmsName(model);
  const unknown = errored.filter((s) => !byName.has(dmsKey(s)));
  if (unknown.length > 0) {
    // Reloading a table dbferry cannot empty would append to it.
    throw ApplicationFailure.create({
      type: FailureType.DmsTableError,
      nonRetryable: true,
      message: `DMS suspended ${unknown.map(dmsKey).join(', ')}, which this migration's model does not have: dbferry cannot empty ${unknown.length > 1 ? 'them' : 'it'} before a reload`,
      details: [{ table: dmsKey(unknown[0]!), hint: 'check the task\'s table mapping against the plan; reload the table by hand (empty it first), then dbferry retry' }],
    });
  }
  await emptyTables(tgt, errored.map((s) => byName.get(dmsKey(s))!), when);
  await awsCall('ReloadTables', () =>
    awsClients(plan).dms.send(
      new ReloadTablesCommand({
        ReplicationTaskArn: arn,
        TablesToReload: errored.map((s) => ({ SchemaName: s.SchemaName!, TableName: s.TableName! })),
        ReloadOption: 'data-reload',
      }),
    ),
  );
  return new Set(errored.map(dmsKey));
}

/**
 * Errors DMS reports for tables, but not for those a reload was just asked for until DMS has
 * taken it up (their state left "Table error" once).
 */
function newErrors(stats: TableStatistics[], reloading: Set<string>): TableStatistics[] {
  for (const x of stats) if (reloading.has(dmsKey(x)) && dmsTableDone(x.TableState) !== 'error') reloading.delete(dmsKey(x));
  return stats.filter((x) => dmsTableDone(x.TableState) === 'error' && !reloading.has(dmsKey(x)));
}

/** How long a task may take to leave the state it was in before a start. */
const LEAVE_STATE_MS = 15 * 60_000;

/**
 * The full load: starts the task (or, on the operator's retry, reloads what failed: a failed
 * task from empty tables, suspended tables one by one), then follows it until DMS has loaded
 * every table — for a task with CDC, stopped before applying its cached changes.
 */
export async function managedLoad(input: ActivityInput, tgt: PgEndpoint): Promise<FullLoadResult> {
  const { plan, migration } = input;
  const started = Date.now();
  const model = await loadModel(tgt, migration.runId);
  const progress: ManagedLoadProgress = { step: 'full load (AWS DMS)', tablesLoaded: 0, tablesTotal: model.tables.length, loading: [] };
  return withHeartbeat(() => ({ ...progress }), async () => {
    let t = await taskOrFail(plan);
    const arn = t.ReplicationTaskArn!;
    const phase = dmsTaskPhase(t.Status, t.StopReason);
    const errored = (await tableStatistics(plan, arn)).filter((s) => dmsTableDone(s.TableState) === 'error');
    let reloading = new Set<string>();
    // After a start, the state the task was in is old news until DMS has moved on from it.
    let startedAt: number | undefined;
    if (phase === 'failed' || (t.ReplicationTaskStartDate && phase !== 'running' && phase !== 'starting' && (phase === 'stopped' || errored.length > 0))) {
      // DMS stopped (failed, stopped by someone, or done with tables suspended): it reloads
      // tables only while running, so the whole task is reloaded, from emptied tables.
      await emptyTables(tgt, model.tables, 'load');
      await startTask(plan, arn, 'reload-target');
      startedAt = Date.now();
    } else if (errored.length > 0 && phase === 'running') {
      reloading = await reloadErrored(plan, tgt, arn, model, errored, 'load');
    } else if (t.Status === 'ready') {
      await startTask(plan, arn, 'start-replication');
      startedAt = Date.now();
    }
    for (;;) {
      await sleep(pollMs());
      t = await taskOrFail(plan);
      const stats = await tableStatistics(plan, arn);
      Object.assign(progress, {
        status: t.Status,
        percent: t.ReplicationTaskStats?.FullLoadProgressPercent,
        tablesLoaded: stats.filter((x) => dmsTableDone(x.TableState) === 'done').length,
        loading: stats
          .filter((x) => x.TableState === 'Full load')
          .slice(0, 50)
          .map((x) => ({ table: dmsKey(x), rows: Number(x.FullLoadRows ?? 0) })),
      });
      heartbeatNow({ ...progress });
      const now = dmsTaskPhase(t.Status, t.StopReason);
      if (startedAt !== undefined) {
        if (now === 'starting' || now === 'running') startedAt = undefined;
        else if (Date.now() - startedAt < LEAVE_STATE_MS) continue;
        else throw ApplicationFailure.create({ type: FailureType.Transient, message: `DMS task ${dmsNames(plan).task} did not start (still ${t.Status})` });
      }
      const bad = newErrors(stats, reloading);
      if (bad.length > 0) throw tableErrors(plan, bad);
      if (now === 'failed') throw taskFailure(plan, t, 'failed');
      if (now === 'stopped') throw taskFailure(plan, t, 'stopped before the full load was done');
      if (reloading.size > 0) continue;
      if (now === 'loaded' || now === 'loaded-changes-held') return loadResult(plan, model, stats, started);
    }
  });
}

function loadResult(plan: Plan, model: SchemaModel, stats: TableStatistics[], started: number): FullLoadResult {
  const byName = tablesByDmsName(model);
  const tables = new Map<string, TableLoadResult>();
  for (const s of stats) {
    const t = byName.get(dmsKey(s));
    if (!t) continue;
    tables.set(qualifiedKey(t), { table: qualifiedKey(t), rows: String(s.FullLoadRows ?? 0), bytes: 0, chunks: 1, ms: 0 });
  }
  return {
    snapshot: 'AWS DMS',
    position: '',
    readPoint: `AWS DMS task ${dmsNames(plan).task} (each table read at its own moment${plan.mode === 'full-load-and-cdc' ? '; its cached changes make them agree' : ''}); ${DMS_LOB_MODE}`,
    snapshots: [],
    tables: listed([...tables.values()], largerFirst((t) => t.rows)).sort((a, b) => a.table.localeCompare(b.table)),
    totals: { tables: tables.size, rows: [...tables.values()].reduce((n, t) => n + BigInt(t.rows), 0n).toString(), bytes: 0 },
    ms: Date.now() - started,
  };
}

/**
 * The CDC step's progress row on the target (cutover writes its stop request there). Mode cdc
 * has no full-load step: the model is read from the source (the target was loaded some other
 * way) and DMS's resources are made here, the task of type cdc.
 */
export async function prepareManagedCdc({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<CdcPrepareResult> {
  const task = `DMS replication task ${dmsNames(plan).task}`;
  const progress = { step: 'prepare CDC' };
  return withHeartbeat(() => ({ ...progress }), async () => {
    if (plan.mode === 'cdc') {
      await ensureCdcModel({ plan, migration }, engine, tgt);
      if (readsOwnSlot(plan)) await ensureDmsSlot(plan);
      await prepareDms(plan, (s) => (progress.step = s));
    }
    await withConnection(tgt, 'prepare CDC', async (c) => {
      await ensureBookkeeping(c);
      await initProgress(c, migration, { commitPosition: '', endPosition: '' }, task);
    });
    const from = plan.mode === 'cdc' ? (plan.cdc.startPosition ?? 'when the task starts') : 'where the full load began (DMS cached the changes since)';
    return { sourceObjects: [task], startPosition: from };
  });
}

/** DMS's CDC latency (the larger of source and target), seconds, from CloudWatch; undefined before DMS reports one. */
async function cdcLatency(plan: Plan, t: ReplicationTask, since: Date): Promise<{ seconds: number; at: Date } | undefined> {
  const taskResource = t.ReplicationTaskArn?.split(':').pop() ?? '';
  const one = async (metric: string) => {
    const r = await awsCall('GetMetricStatistics', () =>
      awsClients(plan).cloudwatch.send(
        new GetMetricStatisticsCommand({
          Namespace: 'AWS/DMS',
          MetricName: metric,
          Dimensions: [
            { Name: 'ReplicationInstanceIdentifier', Value: plan.aws!.replicationInstance!.id },
            { Name: 'ReplicationTaskIdentifier', Value: taskResource },
          ],
          StartTime: since,
          EndTime: new Date(Date.now() + 60_000),
          Period: 60,
          Statistics: ['Maximum'],
        }),
      ),
    );
    const newest = (r.Datapoints ?? []).filter((d) => d.Timestamp && d.Maximum !== undefined).sort((a, b) => +b.Timestamp! - +a.Timestamp!)[0];
    return newest ? { seconds: newest.Maximum!, at: newest.Timestamp! } : undefined;
  };
  const [source, target] = await Promise.all([one('CDCLatencySource'), one('CDCLatencyTarget')]);
  if (!source || !target) return undefined;
  return { seconds: Math.max(source.seconds, target.seconds), at: source.at < target.at ? source.at : target.at };
}

function cdcTables(model: SchemaModel, stats: TableStatistics[]): CdcTableStats[] {
  const byName = tablesByDmsName(model);
  return stats
    .flatMap((s) => {
      const t = byName.get(dmsKey(s));
      return t ? [{ table: qualifiedKey(t), inserts: Number(s.Inserts ?? 0), updates: Number(s.Updates ?? 0), deletes: Number(s.Deletes ?? 0), truncates: 0 }] : [];
    })
    .sort((a, b) => b.inserts + b.updates + b.deletes - (a.inserts + a.updates + a.deletes));
}

const changesOf = (tables: CdcTableStats[]) => tables.reduce((n, t) => n + t.inserts + t.updates + t.deletes, 0);

/** Seconds of DMS CDC latency under which the task counts as caught up. */
const CAUGHT_UP_SECONDS = 5;

/**
 * The cdc step: resumes the task held after the full load (keys and indexes are built now) and
 * follows it — per-table changes, DMS's latency as lag — until cutover asked for the drain and
 * DMS has applied everything: latency measured after the stop request near zero and no change
 * counted for the quiet period. The task keeps running: finalize stops it once validation
 * has found every table equal, so a drain judged too early loses nothing.
 */
export async function followManagedCdc({ plan, migration }: ActivityInput, tgt: PgEndpoint, deps: { alert(plan: Plan, alert: Alert): Promise<void> }): Promise<CdcResult> {
  const model = await loadModel(tgt, migration.runId);
  const alarms = new CdcAlarms(plan, deps);
  let beat: CdcProgress | undefined;
  return withHeartbeat(() => beat ?? { step: 'resuming the DMS task' }, async (signal) => {
    let t = await taskOrFail(plan);
    const arn = t.ReplicationTaskArn!;
    let errored = (await tableStatistics(plan, arn)).filter((s) => dmsTableDone(s.TableState) === 'error');
    if (t.Status === 'ready') {
      // Mode cdc: a task never started begins at the plan's position (or now).
      await startTask(plan, arn, 'start-replication', readsOwnSlot(plan) ? await ensureDmsSlot(plan) : plan.cdc.startPosition);
    } else if (t.Status !== 'running' && t.Status !== 'starting') {
      await startTask(plan, arn, 'resume-processing');
    }
    let reloading = new Set<string>();
    let quietSince: { changes: number; at: number } | undefined;
    const since = Date.now();
    for (;;) {
      if (signal?.aborted) {
        // A pause (or abort) stops DMS too: nothing is applied until resume starts it again.
        await stopTask(plan);
        throw new CancelledFailure('CDC stopped: the DMS task is stopped');
      }
      await sleep(pollMs());
      t = await taskOrFail(plan);
      const stats = await tableStatistics(plan, arn);
      const now = dmsTaskPhase(t.Status, t.StopReason);
      if (now === 'starting' || (now !== 'running' && Date.now() - since < LEAVE_STATE_MS && t.Status !== 'failed')) continue;
      // Tables suspended before (the operator's retry): reloaded now that the task runs.
      if (errored.length > 0) {
        reloading = await reloadErrored(plan, tgt, arn, model, errored, 'cdc');
        errored = [];
        continue;
      }
      const bad = newErrors(stats, reloading);
      if (bad.length > 0) throw tableErrors(plan, bad);
      if (now === 'failed') throw taskFailure(plan, t, 'failed');
      if (now !== 'running') throw taskFailure(plan, t, `stopped during CDC (${t.StopReason ?? t.Status})`);
      const stop = await stopRequest(tgt, migration.runId);
      const latency = await cdcLatency(plan, t, new Date(Date.now() - 10 * 60_000));
      const tables = cdcTables(model, stats);
      const changes = changesOf(tables);
      if (!quietSince || quietSince.changes !== changes) quietSince = { changes, at: Date.now() };
      const caughtUp = reloading.size === 0 && latency !== undefined && latency.seconds <= CAUGHT_UP_SECONDS;
      // DMS holds the source's changes itself (its slot or the binlog): lag is what alerts here.
      if (latency) {
        await alarms.check(latency.seconds, 0, '');
        cdcState(latency.seconds);
      }
      beat = {
        ...alarms.details(),
        appliedPosition: t.RecoveryCheckpoint ?? '',
        sourcePosition: '',
        lagBytes: '0',
        lagSeconds: latency?.seconds ?? -1,
        caughtUp,
        transactions: 0,
        changes,
        tables: tables.slice(0, TABLES_LISTED),
        at: new Date().toISOString(),
      };
      if (stop && caughtUp && latency!.at.getTime() >= Date.parse(stop.at) && latency!.seconds <= 1 && Date.now() - quietSince.at >= QUIET_MS) {
        return { stoppedAt: 'cutover', appliedPosition: t.RecoveryCheckpoint ?? '', markerPosition: stop.at, transactions: 0, changes, tables: busiest(tables) };
      }
    }
  });
}

/** How long DMS must count no change after the stop request before the drain is done. */
const QUIET_MS = 3_000;

async function stopRequest(tgt: PgEndpoint, runId: string): Promise<{ at: string } | undefined> {
  return withConnection(tgt, 'cutover check', async (c) => {
    const r = await c.query<{ stop_position: string | null }>('SELECT stop_position FROM _dbferry.cdc_progress WHERE run_id = $1', [runId]);
    const at = r.rows[0]?.stop_position;
    return at ? { at } : undefined;
  });
}

/**
 * Cutover's first half with DMS: the application's writes must have stopped — DMS caught up
 * (latency under a few seconds) and counting no change to the migrated tables for the quiet
 * period. The stop request it records makes the cdc step wait for DMS to drain, then end.
 */
export async function beginManagedCutover({ plan, migration }: ActivityInput, tgt: PgEndpoint): Promise<CutoverAck> {
  const model = await loadModel(tgt, migration.runId);
  return withHeartbeat(() => ({ step: 'checking that writes have stopped' }), async () => {
    const t = await taskOrFail(plan);
    const latency = await cdcLatency(plan, t, new Date(Date.now() - 10 * 60_000));
    if (!latency || latency.seconds > CAUGHT_UP_SECONDS) {
      throw ApplicationFailure.create({
        type: FailureType.CutoverRefused,
        nonRetryable: true,
        message: `DMS is ${latency ? `${latency.seconds} s behind the source` : 'not reporting its CDC latency yet'}: cutover waits until it has caught up`,
        details: [{ hint: `stop the application's writes, wait for dbferry status ${plan.name} to show the lag near zero, then run dbferry cutover ${plan.name} again` }],
      });
    }
    const before = changesOf(cdcTables(model, await tableStatistics(plan, t.ReplicationTaskArn!)));
    await sleep(QUIET_MS);
    const afterStats = cdcTables(model, await tableStatistics(plan, t.ReplicationTaskArn!));
    if (changesOf(afterStats) !== before) {
      const busiest = afterStats[0]?.table ?? 'a migrated table';
      throw ApplicationFailure.create({
        type: FailureType.CutoverRefused,
        nonRetryable: true,
        message: `writes are still arriving: DMS applied ${changesOf(afterStats) - before} changes (e.g. to ${busiest}) during the ${QUIET_MS / 1000} s check`,
        details: [{ hint: `stop the application's writes to the migrated tables, then run dbferry cutover ${plan.name} again` }],
      });
    }
    const at = new Date().toISOString();
    await withConnection(tgt, 'cutover', (c) => c.query('UPDATE _dbferry.cdc_progress SET stop_position = $2 WHERE run_id = $1', [migration.runId, at]));
    return { markerPosition: at, quietSeconds: QUIET_MS / 1000 };
  });
}

/** Stops the task (a no-op when it is not running) and waits until DMS says it stopped, heartbeating. */
export async function stopTask(plan: Plan): Promise<string | undefined> {
  return withHeartbeat(() => ({ step: `stopping DMS task ${dmsNames(plan).task}` }), async () => {
    const t = await describeTask(plan);
    if (!t?.ReplicationTaskArn) return undefined;
    if (t.Status === 'running' || t.Status === 'starting') {
      try {
        await awsCall('StopReplicationTask', () => awsClients(plan).dms.send(new StopReplicationTaskCommand({ ReplicationTaskArn: t.ReplicationTaskArn! })));
      } catch (err) {
        // Already stopping (a lost answer, or stopped meanwhile): waited for below.
        if (awsFailureCode(err) !== 'InvalidResourceStateFault') throw err;
      }
    }
    for (let i = 0; i < 240; i++) {
      const now = await describeTask(plan);
      if (!now || (now.Status !== 'running' && now.Status !== 'starting' && now.Status !== 'stopping')) return `stopped DMS replication task ${dmsNames(plan).task}`;
      await sleep(pollMs());
    }
    throw ApplicationFailure.create({ type: FailureType.Transient, message: `DMS task ${dmsNames(plan).task} did not stop` });
  });
}

/**
 * The registry: every function of createActivities() is an activity, called by the workflow
 * under these engine-neutral names. Each picks the source engine by `source.engine` and the
 * runner by `runner`, and composes them with the PostgreSQL target.
 *
 *   workflow ──► activity (this file) ──► runner steps (native/) ──► source engine (engine.ts: postgres/)
 *                                                     └────────────► PostgreSQL target (target/, apply/)
 *
 * A new source engine is a folder implementing SourceEngine and a line in `engines`; a new
 * runner is a set of steps and a line in `runnerSteps`.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../plan/failure-types';
import type { ActivityInput, Alert, LeaveOutInput, LoadTaskInput } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import { publishAlert } from './alerts/sns';
import { postAlert } from './alerts/webhook';
import { streamChanges } from './apply/stream-changes';
import type { SourceEngine, SourceEngineFactory, SourceEngineName } from './engine';
import { beginCutover, cleanupSource, finalizeCutover } from './native/cutover';
import { finishLoad, planLoad } from './native/load-plan';
import { loadTask, readPointQueue } from './native/load-task';
import { preflight } from './native/preflight';
import { prepareCdc } from './native/prepare-cdc';
import { holdSnapshot } from './native/snapshot-holder';
import { validate } from './native/validate';
import { resolveEndpoint, type PgEndpoint } from './pg/connection';
import { dumpRestorePostgres } from './postgres/dump-restore';
import { mysqlEngine } from './mysql/mysql-engine';
import { postgresEngine } from './postgres/postgres-engine';
import { buildIndexes } from './target/build-indexes';
import { createDatabasePostgres } from './target/create-database';
import { createTables } from './target/create-tables';
import { columnRules, mappedSource } from './mapped-source';
import { targetModelOrThrow } from './target/target-model';
import { leaveOutTable } from './target/leave-out';
import { cdcStopped } from './telemetry';
import { cleanupManaged } from './aws/dms-cleanup';
import { describeRdsInstance } from './aws/rds';
import { beginManagedCutover, followManagedCdc, managedLoad, prepareManagedCdc, prepareManagedLoad, stopTask } from './aws/dms-runner';

/** What activities need from the outside: injected, so tests can use fakes. */
export interface ActivityDeps {
  /** Source engines by `source.engine`. */
  engines: Partial<Record<SourceEngineName, SourceEngineFactory>>;
  /** The target endpoint of a plan (its secret resolved on this worker). */
  target(plan: Plan): Promise<PgEndpoint>;
  /** Delivers an alert (the webhook); throws when it cannot. */
  alert(plan: Plan, alert: Alert): Promise<void>;
}

export const defaultDeps: ActivityDeps = {
  engines: { postgres: postgresEngine, mysql: mysqlEngine },
  target: (plan) => resolveEndpoint(plan, 'target'),
  // Every channel the plan names; the first that fails makes the delivery fail (and be retried).
  alert: async (plan, alert) => {
    await Promise.all([postAlert(plan, alert), publishAlert(plan, alert)]);
  },
};

export function createActivities(deps: ActivityDeps = defaultDeps) {
  const engineOf = async (plan: Plan): Promise<SourceEngine> => {
    const factory = deps.engines[plan.source.engine];
    if (!factory) {
      throw ApplicationFailure.create({
        type: FailureType.Unsupported,
        nonRetryable: true,
        message: `source.engine ${plan.source.engine} is not supported by this worker's version`,
        details: [{ hint: 'run workers of a version that supports it, then dbferry retry' }],
      });
    }
    // Table mappings: the engine reads the source's names, everything else sees the target's.
    return mappedSource(await factory(plan), columnRules(plan.tables.mappings?.rules ?? []));
  };
  /** The source engine and the target: what every step of either runner reads or writes over its own connections. */
  const sides = async (plan: Plan): Promise<[SourceEngine, PgEndpoint]> => Promise.all([engineOf(plan), deps.target(plan)]);
  const managed = (plan: Plan) => plan.runner === 'aws';

  return {
    preflight: async (input: ActivityInput & { withTargetSchema?: boolean }) => {
      const { plan } = input;
      const [engine, tgt] = await Promise.all([
        engineOf(plan),
        // An RDS instance create-database will create has no endpoint to check yet.
        deps.target(plan).catch(async (err: unknown) => {
          if (plan.aws?.rds?.create && !(await describeRdsInstance(plan))) return undefined;
          throw err;
        }),
      ]);
      return preflight(input, engine, tgt, deps.alert);
    },
    createDatabase: (input: ActivityInput) => createDatabasePostgres(input),
    createTables: async (input: ActivityInput) => {
      const [engine, tgt] = await sides(input.plan);
      return createTables(input, tgt, async () => targetModelOrThrow(await engine.introspect({ objects: true }), input.plan));
    },
    planLoad: async (input: ActivityInput) => planLoad(input, ...(await sides(input.plan))),
    holdSnapshot: async (input: ActivityInput) => holdSnapshot(input, ...(await sides(input.plan))),
    loadTask: async (input: LoadTaskInput) => loadTask(input, ...(await sides(input.plan))),
    readPointQueue: async (input: ActivityInput) => readPointQueue(input, await deps.target(input.plan)),
    finishLoad: async (input: ActivityInput) => finishLoad(input, await deps.target(input.plan)),
    leaveOutTable: async (input: LeaveOutInput) => leaveOutTable(input, await deps.target(input.plan)),
    buildIndexes: async (input: ActivityInput) => {
      const [engine, tgt] = await sides(input.plan);
      return buildIndexes(input, tgt, (s) => engine.sequenceStates(s));
    },
    // PostgreSQL → PostgreSQL only (the plan refuses it for other engines): pg_dump is the reference.
    dumpRestore: (input: ActivityInput) => dumpRestorePostgres(input),
    // The aws runner's full load: DMS's resources made or adopted, then its task followed.
    prepareManagedLoad: (input: ActivityInput) => prepareManagedLoad(input),
    managedLoad: async (input: ActivityInput) => managedLoad(input, await deps.target(input.plan)),
    validate: async (input: ActivityInput) => validate(input, ...(await sides(input.plan))),
    prepareCdc: async (input: ActivityInput) =>
      managed(input.plan) ? prepareManagedCdc(input, ...(await sides(input.plan))) : prepareCdc(input, ...(await sides(input.plan))),
    streamChanges: async (input: ActivityInput) => {
      try {
        return managed(input.plan) ? await followManagedCdc(input, await deps.target(input.plan), { alert: deps.alert }) : await streamChanges(input, ...(await sides(input.plan)), { alert: deps.alert });
      } finally {
        // However CDC ended here, this worker's lag gauges no longer describe it.
        cdcStopped();
      }
    },
    beginCutover: async (input: ActivityInput) =>
      managed(input.plan) ? beginManagedCutover(input, await deps.target(input.plan)) : beginCutover(input, ...(await sides(input.plan))),
    finalizeCutover: async (input: ActivityInput) => {
      const [engine, tgt] = await sides(input.plan);
      if (!managed(input.plan)) return finalizeCutover(input, engine, tgt);
      // Validation found every table equal: DMS's task has nothing left to do.
      const stopped = await stopTask(input.plan);
      return finalizeCutover(input, engine, tgt, async () => {
        const removed = await cleanupManaged(input.plan, input.plan.aws?.cleanup === true);
        return stopped && !removed.dropped.includes(stopped) ? { ...removed, dropped: [stopped, ...removed.dropped] } : removed;
      });
    },
    /** Abort (the task stopped) and `dbferry cleanup` (`removeAll`: everything the migration made). */
    cleanupSource: async (input: ActivityInput & { removeAll?: boolean }) =>
      managed(input.plan) ? cleanupManaged(input.plan, input.removeAll === true) : cleanupSource(input, await engineOf(input.plan)),
    sendAlert: (input: { plan: Plan; alert: Alert }) => deps.alert(input.plan, input.alert),
  };
}

export type Activities = ReturnType<typeof createActivities>;

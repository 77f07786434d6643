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
  alert: postAlert,
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
  /** The source engine and the target of a step of the plan's runner (native is the only one yet). */
  const sides = async (plan: Plan): Promise<[SourceEngine, PgEndpoint]> => {
    if (plan.runner !== 'native') {
      throw ApplicationFailure.create({ type: FailureType.Unsupported, nonRetryable: true, message: `runner ${plan.runner} is not supported by this worker's version` });
    }
    return Promise.all([engineOf(plan), deps.target(plan)]);
  };

  return {
    preflight: async (input: ActivityInput & { withTargetSchema?: boolean }) => preflight(input, ...(await sides(input.plan)), deps.alert),
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
    validate: async (input: ActivityInput) => validate(input, ...(await sides(input.plan))),
    prepareCdc: async (input: ActivityInput) => prepareCdc(input, ...(await sides(input.plan))),
    streamChanges: async (input: ActivityInput) => streamChanges(input, ...(await sides(input.plan)), { alert: deps.alert }),
    beginCutover: async (input: ActivityInput) => beginCutover(input, ...(await sides(input.plan))),
    finalizeCutover: async (input: ActivityInput) => finalizeCutover(input, ...(await sides(input.plan))),
    cleanupSource: async (input: ActivityInput) => cleanupSource(input, await engineOf(input.plan)),
    sendAlert: (input: { plan: Plan; alert: Alert }) => deps.alert(input.plan, input.alert),
  };
}

export type Activities = ReturnType<typeof createActivities>;

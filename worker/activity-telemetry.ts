import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { StepName } from '../plan/migration-types';

/**
 * The migration step each activity runs in: every log line and metric of an activity says
 * which migration and step it belongs to, so an operator can filter a worker's log (or a
 * dashboard) by them. Activities outside the step list (alerts, cleanup) say what they are.
 */
const STEP_OF_ACTIVITY: Record<string, StepName | 'cutover' | 'cleanup' | 'alert'> = {
  preflight: 'preflight',
  createDatabase: 'create-database',
  createTables: 'create-tables',
  planLoad: 'full-load',
  holdSnapshot: 'full-load',
  loadTask: 'full-load',
  readPointQueue: 'full-load',
  finishLoad: 'full-load',
  leaveOutTable: 'full-load',
  prepareManagedLoad: 'full-load',
  managedLoad: 'full-load',
  buildIndexes: 'build-indexes',
  dumpRestore: 'dump-restore',
  validate: 'validate',
  prepareCdc: 'cdc',
  streamChanges: 'cdc',
  beginCutover: 'cutover',
  finalizeCutover: 'finalize',
  cleanupSource: 'cleanup',
  sendAlert: 'alert',
};

/** The migration an activity works for: every activity takes `{ plan, … }`. */
function migrationOf(args: readonly unknown[]): string | undefined {
  const first = args[0] as { plan?: { name?: unknown } } | undefined;
  return typeof first?.plan?.name === 'string' ? first.plan.name : undefined;
}

export const activityTelemetry: ActivityInterceptorsFactory = (ctx: Context) => {
  let migration: string | undefined;
  const step = STEP_OF_ACTIVITY[ctx.info.activityType] ?? ctx.info.activityType;
  const tags = () => ({ ...(migration ? { migration } : {}), step });
  return {
    inbound: {
      async execute(input, next) {
        migration = migrationOf(input.args);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes: (attrs, next) => next({ ...attrs, ...tags() }),
      getMetricTags: (t, next) => next({ ...t, ...(migration ? { migration } : {}) }),
    },
  };
};

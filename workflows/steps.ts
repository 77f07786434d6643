import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../plan/failure-types';
import type { StepName } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';

/**
 * The one place that decides which steps a migration runs, in the order that keeps data safe,
 * by runner and mode. With CDC, validation waits for the cutover drain (the source no longer
 * moves then) and finalize carries the sequences and cleans up the source.
 */
const STEP_LISTS: Record<Plan['runner'], Partial<Record<Plan['mode'], StepName[]>>> = {
  native: {
    'full-load': ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate'],
    // pg_dump / pg_restore make the tables, keys and indexes and load the rows in one step.
    'dump-restore': ['preflight', 'create-database', 'dump-restore', 'validate'],
    'full-load-and-cdc': ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'cdc', 'validate', 'finalize'],
    // The target was loaded some other way.
    cdc: ['preflight', 'cdc', 'validate', 'finalize'],
  },
  // The same steps with AWS DMS moving the rows: its task stops after the full load with its
  // cached changes held, so keys and indexes are built before it applies them.
  aws: {
    // finalize: the task is stopped, the sequences carried again, and (aws.cleanup) DMS's resources deleted.
    'full-load': ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate', 'finalize'],
    'full-load-and-cdc': ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'cdc', 'validate', 'finalize'],
    // A DMS task of type cdc, from the plan's position: the target was loaded some other way.
    cdc: ['preflight', 'cdc', 'validate', 'finalize'],
  },
};

export function stepsOf(plan: Pick<Plan, 'runner' | 'mode'>): StepName[] {
  const steps = STEP_LISTS[plan.runner]?.[plan.mode];
  if (!steps) {
    throw ApplicationFailure.create({ type: FailureType.Unsupported, nonRetryable: true, message: `runner ${plan.runner} with mode ${plan.mode} is not supported by this version` });
  }
  return steps;
}

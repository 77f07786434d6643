import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, TimeoutFailure, type TemporalFailure } from '@temporalio/workflow';
import type { FailureDetails } from '../plan/failure-types';
import type { FailureInfo, StepName } from '../plan/migration-types';

/** What the operator sees of a failed step: the activity's typed failure, unwrapped. */
export function describeFailure(step: StepName, err: unknown, at: string): FailureInfo {
  let cause: unknown = err;
  // A load task's failure arrives wrapped twice: child workflow, then activity.
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as FailureDetails;
    return { step, type: cause.type ?? 'Error', message: cause.message, table: d.table, hint: d.hint, ...(d.code ? { code: d.code } : {}), at };
  }
  if (cause instanceof TimeoutFailure) {
    return { step, type: 'Timeout', message: `${step} timed out (${cause.timeoutType})`, at, hint: 'check the workers are running, then run dbferry retry' };
  }
  const t = cause as TemporalFailure;
  return { step, type: t?.name ?? 'Error', message: t?.message ?? String(cause), at };
}

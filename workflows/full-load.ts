import { ActivityFailure, ApplicationFailure, CancellationScope, condition, executeChild, isCancellation, patched, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import { FailureType } from '../plan/failure-types';
import { summarized } from './activity-calls';
import { inParallel } from '../plan/in-parallel';
import type { ActivityInput, FullLoadResult, LoadBatchInput, LoadBatchResult, LoadTaskResult } from '../plan/migration-types';
import { activityRetry } from './retry-policy';

/**
 * Tasks per child workflow. A task costs a child about six history events (its activity's
 * three and a share of workflow tasks), so a child stays near 2,000 events whatever the schema
 * size; the parent gets one child per 300 tasks (a task holds up to 100 small tables).
 */
export const TASKS_PER_CHILD = 300;
/** A load round repeats only for page-chunked tables that straddled a snapshot change. */
const MAX_ROUNDS = 3;

const control = summarized({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '1 minute', retry: activityRetry });
// The holder lives as long as the load. A lost worker is noticed within the heartbeat timeout
// and the holder restarted elsewhere (a new snapshot generation); it never gives up on its own:
// the load fails, and cancels it, if the source stays unreachable.
const holder = summarized({
  startToCloseTimeout: '30 days',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});
const loaderOptions = { startToCloseTimeout: '30 days', heartbeatTimeout: '30 seconds', retry: activityRetry } as const;
const loader = summarized(loaderOptions);

/**
 * The full-load step: plan once (stored on the target), hold one snapshot for the whole load,
 * fan the tasks out over child workflows, then check the ledger is complete. `attempt` tells
 * apart the children of an operator's retry from the failed round's.
 */
export async function runFullLoad(input: ActivityInput, attempt: number): Promise<FullLoadResult> {
  const started = Date.now();
  const summary = await control('planLoad', 'full load: plan tables and chunks (stored on the target)', input);

  let holderFailure: unknown;
  const holderScope = new CancellationScope();
  const holding = holderScope
    .run(() => holder('holdSnapshot', 'full load: hold the source snapshot every loader imports', input))
    .catch((err: unknown) => {
      if (!isCancellation(err)) holderFailure = err;
    });
  const loadScope = new CancellationScope();
  try {
    for (let round = 1; ; round++) {
      const loading = loadScope.run(() => loadAllTasks(input, summary.tasks, `${attempt}-${round}`));
      await Promise.race([loading, condition(() => holderFailure !== undefined)]);
      if (holderFailure !== undefined) {
        loadScope.cancel();
        await loading.catch(() => undefined);
        throw holderFailure;
      }
      const finished = await control('finishLoad', 'full load: check the ledger, reload tables split across snapshots', input);
      if (finished.report) return { ...finished.report, ms: Date.now() - started };
      if (round >= MAX_ROUNDS) {
        throw ApplicationFailure.create({
          type: 'SnapshotUnstable',
          nonRetryable: true,
          message: `the load snapshot changed during each of ${MAX_ROUNDS} load rounds of ${finished.reloadTables?.join(', ')} (its holder keeps dying)`,
          details: [{ table: finished.reloadTables?.[0], hint: 'check the workers and the source connection, then run dbferry retry' }],
        });
      }
    }
  } finally {
    holderScope.cancel();
    await holding;
  }
}

async function loadAllTasks(input: ActivityInput, tasks: number, tag: string): Promise<void> {
  const { workflowId } = workflowInfo();
  for (let from = 0, batch = 1; from < tasks; from += TASKS_PER_CHILD, batch++) {
    await executeChild(loadBatchWorkflow, {
      workflowId: `${workflowId}-load-${tag}-${batch}`,
      args: [{ ...input, fromTask: from, toTask: Math.min(tasks, from + TASKS_PER_CHILD) }],
    });
  }
}

/**
 * A child workflow: the tasks [fromTask, toTask) over `load.parallel` activities at once, which
 * Temporal hands to whichever workers poll. The first failure lets running tasks finish and
 * starts no new one; the parent's step then waits for the operator.
 */
export async function loadBatchWorkflow({ fromTask, toTask, ...input }: LoadBatchInput): Promise<LoadBatchResult> {
  const result: LoadBatchResult = { tasks: 0, alreadyLoaded: 0, rows: '0', bytes: 0 };
  const tasks = Array.from({ length: toTask - fromTask }, (_, i) => fromTask + i);
  const load = loaderFor(input);
  await inParallel(tasks, input.plan.load.parallel, async (task) => {
    const r = await load(task);
    result.tasks++;
    if (r.alreadyLoaded) result.alreadyLoaded++;
    result.rows = (BigInt(result.rows) + BigInt(r.rows)).toString();
    result.bytes += r.bytes;
  });
  return result;
}

/** How long a loader waits to be picked up on the holder's queue before the queue is asked again. */
const BESIDE_HOLDER_WAIT = '2 minutes';
/** Times a task follows the holder before the operator is asked (about an hour of a holder that cannot settle). */
const MAX_HOLDER_MOVES = 30;

/**
 * Runs one load task. A PostgreSQL read point is joined from any worker. A MySQL one lives in
 * its holder's process, so its loaders are scheduled on that worker's own task queue; when the
 * holder moved (its worker died and it started again elsewhere), the task is not picked up
 * there or finds the read point gone, and is scheduled again where the holder is now.
 */
function loaderFor(input: ActivityInput): (task: number) => Promise<LoadTaskResult> {
  const summary = (task: number) => `full load: task ${task} (COPY into the target with its ledger row)`;
  // A MySQL load batch started by a version without the routing replays as it ran.
  if (input.plan.source.engine === 'postgres' || !patched('mysql-loaders-beside-holder-v1')) return (task) => loader('loadTask', summary(task), { ...input, task });
  let queue: Promise<string | undefined> | undefined;
  const holderQueue = () => (queue ??= control('readPointQueue', 'full load: find the worker that holds the read point', input).then((r) => r.taskQueue));
  return async (task) => {
    for (let moves = 0; ; moves++) {
      const taskQueue = await holderQueue();
      try {
        if (taskQueue === undefined) return await loader('loadTask', summary(task), { ...input, task });
        return await summarized({ ...loaderOptions, taskQueue, scheduleToStartTimeout: BESIDE_HOLDER_WAIT })('loadTask', summary(task), { ...input, task });
      } catch (err) {
        if (!holderMoved(err)) throw err;
        if (moves >= MAX_HOLDER_MOVES) {
          throw ApplicationFailure.create({
            type: 'ReadPointUnreachable',
            nonRetryable: true,
            message: `load task ${task} followed the source read point's holder ${moves} times without running beside it`,
            details: [{ hint: 'check the workers (each must poll its own task queue: dbferry worker) and the snapshot holder, then run dbferry retry' }],
          });
        }
        if ((await queue) === taskQueue) queue = undefined;
      }
    }
  };
}

function holderMoved(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  return (cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START') || (cause instanceof ApplicationFailure && cause.type === FailureType.ReadPointElsewhere);
}

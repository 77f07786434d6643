import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CheckResult } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';

const { preflight } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 2, initialInterval: '1 second' },
});

/** `dbferry check`: preflight on a worker (where the databases are reachable), nothing written. */
export async function checkWorkflow({ plan }: { plan: Plan }): Promise<CheckResult> {
  return preflight({ plan, migration: { name: plan.name, runId: workflowInfo().runId }, withTargetSchema: true });
}
